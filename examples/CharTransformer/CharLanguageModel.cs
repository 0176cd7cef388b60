using Orchestrator.Sdk;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Examples.CharTransformer;

/// <summary>
/// A character-level language model on any UTF-8 text file: the text's characters are the vocabulary,
/// the last <c>heldOut</c> share of the text is the held-out split, and a sample is a window of
/// <c>context</c> characters whose targets are the same window shifted by one. Metrics: the held-out
/// loss (cross-entropy per character, in nats) and perplexity; checkpoints are ranked by loss.
/// </summary>
public sealed class CharLanguageModel : Workload<Transformer>
{
    private readonly Tensor _train, _heldOut;   // character ids, int64
    private readonly TransformerShape _shape;
    private readonly int _context;

    public CharLanguageModel(WorkloadContext context)
    {
        var args = context.Args;
        var path = args.ExistingFile("text", "/usr/share/common-licenses/GPL-3");
        _context = args.Int("context", 64, 2, 4096);
        int layers = args.Int("layers", 4, 1, 64);
        int width = args.Int("width", 128, 8, 8192);
        int heads = args.Int("heads", 4, 1, 256);
        double heldOut = args.Double("heldOut", 0.1, 0.01, 0.5);
        if (width % heads != 0) throw new WorkloadArgumentException(args.Field("heads"), $"must divide width ({width}), was {heads}");

        var text = File.ReadAllText(path);
        var vocabulary = text.Distinct().Order().ToArray();
        var ids = text.Select(c => (long)Array.BinarySearch(vocabulary, c)).ToArray();
        int split = (int)(ids.Length * (1 - heldOut));
        if (split - 1 < _context || ids.Length - split - 1 < _context)
            throw new WorkloadArgumentException(args.Field("text"), $"{path} has {ids.Length} characters, too few for windows of {_context} in both splits");
        _train = tensor(ids[..split]).DetachFromDisposeScope();
        _heldOut = tensor(ids[split..]).DetachFromDisposeScope();
        _shape = new TransformerShape(vocabulary.Length, _context, layers, width, heads);
        // Into the job's log (orchestrator logs <job-id>), with this worker's rank.
        context.Log($"{path}: {ids.Length} characters, a vocabulary of {vocabulary.Length}; {split} for training, {ids.Length - split} held out");
    }

    public override Transformer CreateModel() => new(_shape);

    public override WorkloadData OpenData(DataSplit split, Device device) =>
        new Windows(split == DataSplit.Train ? _train : _heldOut, _context, device);

    /// <summary>Cross-entropy per character, summed over the batch's windows (so a window counts as one sample).</summary>
    public override Tensor LossSum(Transformer model, Batch batch)
    {
        var logits = model.forward(batch.Inputs);
        var perToken = functional.cross_entropy(logits.reshape(-1, logits.shape[^1]), batch.Targets.reshape(-1), reduction: Reduction.Sum);
        using var characters = batch.Targets.shape[1].ToScalar();   // explicit Scalars: see the README on TorchSharp numbers
        return perToken.div(characters);
    }

    public override IReadOnlyDictionary<string, double> Summarize(IReadOnlyDictionary<string, double> sums, long count)
    {
        double loss = count == 0 ? 0 : sums["loss"] / count;
        return new Dictionary<string, double> { ["loss"] = loss, ["perplexity"] = Math.Exp(loss) };
    }

    public override MetricRanking Ranking => MetricRanking.Lower("loss");

    public override void Dispose()
    {
        _train.Dispose();
        _heldOut.Dispose();
    }

    /// <summary>Windows at a stride of <c>context</c>: sample i is characters [i·context, i·context + context] (inputs, then targets shifted by one).</summary>
    private sealed class Windows : WorkloadData
    {
        private readonly Tensor _ids, _offsets;
        private readonly int _context;

        public Windows(Tensor ids, int context, Device device)
        {
            _context = context;
            _ids = ids.detach().to(device).DetachFromDisposeScope();
            _offsets = arange(context + 1, dtype: ScalarType.Int64, device: device).DetachFromDisposeScope();
            Count = (int)((ids.shape[0] - 1) / context);
        }

        public override int Count { get; }

        public override Batch Get(ReadOnlySpan<int> indices)
        {
            var starts = new long[indices.Length];
            for (int i = 0; i < starts.Length; i++) starts[i] = (long)indices[i] * _context;
            using var startTensor = tensor(starts).to(_ids.device);
            using var one = 1.ToScalar();   // an explicit alpha: see the README on TorchSharp numbers
            var windows = _ids.index_select(0, startTensor.unsqueeze(1).add(_offsets, one).reshape(-1)).reshape(indices.Length, _context + 1);
            return new Batch(windows.narrow(1, 0, _context), windows.narrow(1, 1, _context));
        }

        public override void Dispose()
        {
            _ids.Dispose();
            _offsets.Dispose();
        }
    }
}

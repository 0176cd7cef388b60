using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Examples.CharTransformer;

/// <summary>The size of a decoder-only transformer.</summary>
public sealed record TransformerShape(int Vocabulary, int Context, int Layers, int Width, int Heads);

/// <summary>
/// A decoder-only transformer (GPT-style, pre-norm): token and position embeddings, blocks of causal
/// multi-head self-attention and an MLP, each with a residual connection, a final layer norm and a
/// linear head. Field names become parameter names (<c>blocks.0.attn.qkv.weight</c>), as in PyTorch.
/// </summary>
public sealed class Transformer : Module<Tensor, Tensor>
{
    private readonly Embedding tok, pos;
    private readonly ModuleList<Block> blocks;
    private readonly LayerNorm ln_f;
    private readonly Linear head;

    public Transformer(TransformerShape shape) : base(nameof(Transformer))
    {
        tok = Embedding(shape.Vocabulary, shape.Width);
        pos = Embedding(shape.Context, shape.Width);
        blocks = new ModuleList<Block>(Enumerable.Range(0, shape.Layers).Select(_ => new Block(shape.Width, shape.Heads)).ToArray());
        ln_f = LayerNorm(shape.Width);
        head = Linear(shape.Width, shape.Vocabulary);
        RegisterComponents();
    }

    /// <summary>Token ids [B, T] to next-token logits [B, T, vocabulary].</summary>
    public override Tensor forward(Tensor ids)
    {
        using var positions = arange(ids.shape[1], dtype: ScalarType.Int64, device: ids.device);
        using var one = 1.ToScalar();   // add(t) alone would pass an implicit alpha of 1 (see the README on TorchSharp numbers)
        var x = tok.call(ids).add(pos.call(positions), one);
        foreach (var block in blocks) x = block.call(x);
        return head.call(ln_f.call(x));
    }
}

/// <summary>x + attention(norm(x)), then x + mlp(norm(x)).</summary>
public sealed class Block : Module<Tensor, Tensor>
{
    private readonly LayerNorm ln1, ln2;
    private readonly CausalSelfAttention attn;
    private readonly Linear fc, proj;

    public Block(int width, int heads) : base(nameof(Block))
    {
        ln1 = LayerNorm(width);
        attn = new CausalSelfAttention(width, heads);
        ln2 = LayerNorm(width);
        fc = Linear(width, 4 * width);
        proj = Linear(4 * width, width);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var one = 1.ToScalar();   // an explicit alpha: see the README on TorchSharp numbers
        x = x.add(attn.call(ln1.call(x)), one);
        return x.add(proj.call(functional.gelu(fc.call(ln2.call(x)))), one);
    }
}

/// <summary>Multi-head self-attention in which position t sees positions up to t only.</summary>
public sealed class CausalSelfAttention : Module<Tensor, Tensor>
{
    private readonly Linear qkv, proj;
    private readonly int _heads;

    public CausalSelfAttention(int width, int heads) : base(nameof(CausalSelfAttention))
    {
        _heads = heads;
        qkv = Linear(width, 3 * width);
        proj = Linear(width, width);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        long b = x.shape[0], t = x.shape[1], c = x.shape[2], d = c / _heads;
        // [3, B, heads, T, d] split by unbind: its backward stacks the three gradients (three selects would each
        // fill a zero tensor of the whole size).
        var parts = qkv.call(x).reshape(b, t, 3, _heads, d).permute(2, 0, 3, 1, 4).unbind(0);
        var (q, k, v) = (parts[0], parts[1], parts[2]);
        // Numbers passed to libtorch as explicit Scalars that live to the end of the call (see the README).
        using var scale = (1.0 / Math.Sqrt(d)).ToScalar();
        using var masked = float.NegativeInfinity.ToScalar();
        using var future = ones(t, t, dtype: ScalarType.Bool, device: x.device).triu(1);
        var weights = functional.softmax(q.matmul(k.transpose(-2, -1)).mul(scale).masked_fill(future, masked), -1);
        var y = weights.matmul(v).transpose(1, 2).reshape(b, t, c);
        return proj.call(y);
    }
}

using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using Orchestrator.Core.IO;
using Orchestrator.Training.Safetensors;

namespace Orchestrator.Training.Checkpoints;

/// <summary>The commit record of a checkpoint: written last, so a checkpoint without one never happened.</summary>
public sealed record CheckpointManifest(string Format, string Job, string Model, long Step, int Epoch, int EpochStep, int GlobalBatch,
    int Generation, string Digest, string CreatedAt, IReadOnlyList<ManifestEntry> Files);

public sealed record ManifestEntry(string Name, long Length, string Sha256);

/// <summary>
/// Held-out metrics of a checkpoint, written beside it once evaluated: every metric the workload names,
/// and the one that ranks the job's checkpoints. (Files written before workloads had names hold
/// <c>accuracy</c> and <c>loss</c> only; they read as those two metrics ranked by accuracy.)
/// </summary>
public sealed record CheckpointEvaluation(double? Accuracy, double? Loss, string EvaluatedAt,
    IReadOnlyDictionary<string, double>? Metrics = null, string? RankMetric = null, bool HigherIsBetter = true)
{
    public IReadOnlyDictionary<string, double> AllMetrics => Metrics ?? new Dictionary<string, double>
    {
        ["accuracy"] = Accuracy ?? double.NaN,
        ["loss"] = Loss ?? double.NaN,
    };

    public string Ranking => RankMetric ?? "accuracy";

    /// <summary>The ranking metric's value, null where the metric is missing.</summary>
    public double? Score => AllMetrics.TryGetValue(Ranking, out var v) ? v : null;
}

/// <summary>One checkpoint on disk as last verified: <see cref="Problem"/> says why it is not <see cref="Verified"/>.</summary>
public sealed record CheckpointInfo(long Step, int Epoch, string Folder, bool Verified, string? Problem, CheckpointManifest? Manifest,
    CheckpointEvaluation? Evaluation)
{
    public string WeightsPath => Path.Combine(Folder, CheckpointFolder.ModelFileName);
}

/// <summary>A checkpoint that failed verification: nothing from it is used.</summary>
public sealed class CheckpointInvalidException(string message) : Exception(message);

/// <summary>
/// A job's checkpoints on disk (PRODUCT.md section 5): one folder per step, <c>step-000000500/</c>, with
/// <c>model.safetensors</c>, <c>optimizer.safetensors</c> and <c>manifest.json</c> (names, lengths,
/// SHA-256, position, generation). Each file is written atomically (temp, fsync, rename, fsync of the
/// folder) and the manifest last: it is the commit point. Verification checks the manifest, every
/// file's length and SHA-256, and the safetensors structure, before any tensor is made.
/// </summary>
public static class CheckpointFolder
{
    public const string ModelFileName = "model.safetensors";
    public const string OptimizerFileName = "optimizer.safetensors";
    public const string ManifestFileName = "manifest.json";
    public const string EvaluationFileName = "evaluation.json";
    public const string Format = "orchestrator-checkpoint/1";
    private const string Prefix = "step-";

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    public static string StepFolder(string root, long step) => Path.Combine(root, $"{Prefix}{step:D9}");

    // A checkpoint is built in a sibling folder and swapped in once committed; these suffixes never parse as a step.
    private const string NewSuffix = ".new-";
    private const string OldSuffix = ".old-";

    /// <summary>
    /// Writes a snapshot; a verified checkpoint of the same step and digest is kept as it is (a replay after
    /// recovery). The checkpoint is written whole (files, then the manifest) into a sibling folder that is
    /// renamed into place, the job folder fsynced at each step, so a checkpoint of the same step with another
    /// digest is replaced only once its replacement is committed, and a new step folder's entry is durable.
    /// </summary>
    public static CheckpointInfo Write(string root, TrainingSnapshot snapshot)
    {
        var folder = StepFolder(root, snapshot.Position.Step);
        var existing = Verify(folder);
        if (existing.Verified && existing.Manifest!.Digest == snapshot.Digest) return existing;
        Directory.CreateDirectory(root);
        var fresh = folder + NewSuffix + Guid.NewGuid().ToString("N");
        try
        {
            Directory.CreateDirectory(fresh);
            AtomicFile.WriteAllBytes(Path.Combine(fresh, ModelFileName), snapshot.ModelFile);
            AtomicFile.WriteAllBytes(Path.Combine(fresh, OptimizerFileName), snapshot.OptimizerFile);
            var p = snapshot.Position;
            var manifest = new CheckpointManifest(Format, snapshot.Job, snapshot.Model, p.Step, p.Epoch, p.EpochStep, p.GlobalBatch,
                snapshot.Generation, snapshot.Digest, DateTimeOffset.UtcNow.ToString("O"),
                [Entry(ModelFileName, snapshot.ModelFile), Entry(OptimizerFileName, snapshot.OptimizerFile)]);
            AtomicFile.WriteAllBytes(Path.Combine(fresh, ManifestFileName), JsonSerializer.SerializeToUtf8Bytes(manifest, Json));
            string? replaced = null;
            if (Directory.Exists(folder))
            {
                // Set aside, not deleted: until the new folder is in place, the old one is the checkpoint (RemoveLeftovers puts it back).
                replaced = folder + OldSuffix + Guid.NewGuid().ToString("N");
                Directory.Move(folder, replaced);
            }
            Directory.Move(fresh, folder);
            AtomicFile.FsyncDirectory(root);
            if (replaced is not null) TryDeleteFolder(replaced);
            // What was just committed, from memory: reading and hashing the files back would only repeat the write's work.
            return new CheckpointInfo(p.Step, p.Epoch, folder, true, null, manifest, null);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Nothing half-written stays behind to be mistaken for a checkpoint (the temp files are already gone).
            TryDeleteFolder(fresh);
            throw;
        }
    }

    /// <summary>Every checkpoint folder of a job, oldest first, each verified now.</summary>
    public static IReadOnlyList<CheckpointInfo> List(string root)
    {
        if (!Directory.Exists(root)) return [];
        return Directory.EnumerateDirectories(root, Prefix + "*")
            .Select(f => (Folder: f, Step: long.TryParse(Path.GetFileName(f)[Prefix.Length..], out var s) ? s : -1))
            .Where(f => f.Step >= 0)
            .OrderBy(f => f.Step)
            .Select(f => Verify(f.Folder))
            .ToList();
    }

    /// <summary>The newest checkpoint that verifies; a newer one that does not is skipped (and stays listed as unverified).</summary>
    public static CheckpointInfo? LatestVerified(string root) => List(root).LastOrDefault(c => c.Verified);

    public static CheckpointInfo Verify(string folder)
    {
        long.TryParse(Path.GetFileName(folder).AsSpan(Prefix.Length), out var step);
        CheckpointManifest? manifest = null;
        try
        {
            manifest = ReadManifest(folder);
            CheckFiles(folder, manifest);
            if (manifest.Step != step) throw new CheckpointInvalidException($"manifest says step {manifest.Step}, the folder is step {step}");
            return new CheckpointInfo(step, manifest.Epoch, folder, true, null, manifest, ReadEvaluation(folder));
        }
        catch (CheckpointInvalidException ex)
        {
            return new CheckpointInfo(step, manifest?.Epoch ?? 0, folder, false, ex.Message, manifest, null);
        }
    }

    /// <summary>Verifies the checkpoint and returns its content; throws <see cref="CheckpointInvalidException"/> naming the problem.</summary>
    public static TrainingSnapshot Load(string folder)
    {
        var manifest = ReadManifest(folder);
        var files = CheckFiles(folder, manifest);
        return new TrainingSnapshot(manifest.Job, manifest.Model,
            new TrainingPosition(manifest.Step, manifest.Epoch, manifest.EpochStep, manifest.GlobalBatch),
            manifest.Generation, manifest.Digest, files[ModelFileName], files[OptimizerFileName]);
    }

    /// <summary>Writes the checkpoint's held-out metrics and the ranking chosen for its job.</summary>
    public static void RecordEvaluation(string folder, IReadOnlyDictionary<string, double> metrics, string rankMetric, bool higherIsBetter) =>
        AtomicFile.WriteAllBytes(Path.Combine(folder, EvaluationFileName),
            JsonSerializer.SerializeToUtf8Bytes(new CheckpointEvaluation(metrics.TryGetValue("accuracy", out var a) ? a : null,
                metrics.TryGetValue("loss", out var l) ? l : null, DateTimeOffset.UtcNow.ToString("O"), metrics, rankMetric, higherIsBetter), Json));

    /// <summary>
    /// Keeps the <paramref name="keep"/> best evaluated checkpoints by the ranking metric recorded with their
    /// evaluation plus the newest verified one, and deletes the other evaluated ones. Checkpoints not yet
    /// evaluated wait for their evaluation; unverified ones stay as evidence.
    /// </summary>
    public static IReadOnlyList<long> ApplyRetention(string root, int keep)
    {
        var all = List(root);
        var newest = all.LastOrDefault(c => c.Verified);
        var evaluated = all.Where(c => c.Verified && c.Evaluation is not null).ToList();
        bool higherIsBetter = evaluated.LastOrDefault()?.Evaluation!.HigherIsBetter ?? true;
        var best = Orchestrator.Core.Jobs.CheckpointRanking.Order(evaluated, c => c.Evaluation!.Score, higherIsBetter, c => c.Step)
            .Take(keep)
            .Select(c => c.Step)
            .ToHashSet();
        var deleted = new List<long>();
        foreach (var c in evaluated)
        {
            if (best.Contains(c.Step) || c.Step == newest?.Step) continue;
            // The manifest goes first, so an interrupted deletion leaves an uncommitted folder, never a damaged "valid" one.
            File.Delete(Path.Combine(c.Folder, ManifestFileName));
            TryDeleteFolder(c.Folder);
            deleted.Add(c.Step);
        }
        return deleted;
    }

    /// <summary>Removes temp files of writers that crashed before their rename; returns how many.</summary>
    public static int RemoveLeftovers(string root)
    {
        if (!Directory.Exists(root)) return 0;
        int removed = 0;
        foreach (var dir in Directory.EnumerateDirectories(root, Prefix + "*").ToList())
        {
            var name = Path.GetFileName(dir);
            int cut = name.IndexOf(NewSuffix, StringComparison.Ordinal);
            if (cut > 0) { TryDeleteFolder(dir); removed++; continue; }   // a replacement that was never swapped in
            cut = name.IndexOf(OldSuffix, StringComparison.Ordinal);
            if (cut > 0)
            {
                // A checkpoint set aside for its replacement: the replacement is in place, or the crash came first.
                var original = Path.Combine(root, name[..cut]);
                if (Directory.Exists(original)) TryDeleteFolder(dir);
                else Directory.Move(dir, original);
                removed++;
                continue;
            }
            removed += AtomicFile.RemoveLeftovers(dir);
        }
        return removed;
    }

    private static ManifestEntry Entry(string name, byte[] content) => new(name, content.LongLength, Convert.ToHexStringLower(SHA256.HashData(content)));

    private static CheckpointManifest ReadManifest(string folder)
    {
        var path = Path.Combine(folder, ManifestFileName);
        if (!File.Exists(path)) throw new CheckpointInvalidException("manifest missing (the checkpoint was never committed)");
        CheckpointManifest? manifest;
        try { manifest = JsonSerializer.Deserialize<CheckpointManifest>(File.ReadAllBytes(path), Json); }
        catch (Exception ex) when (ex is JsonException or IOException or UnauthorizedAccessException)
        {
            throw new CheckpointInvalidException($"manifest unreadable: {ex.Message}");
        }
        if (manifest is null || manifest.Format != Format) throw new CheckpointInvalidException($"manifest is not '{Format}'");
        var names = (manifest.Files ?? []).Select(f => f.Name).OrderBy(n => n, StringComparer.Ordinal).ToList();
        if (!names.SequenceEqual([ModelFileName, OptimizerFileName]))
            throw new CheckpointInvalidException($"manifest names [{string.Join(", ", names)}], expected [{ModelFileName}, {OptimizerFileName}]");
        return manifest;
    }

    private static Dictionary<string, byte[]> CheckFiles(string folder, CheckpointManifest manifest)
    {
        var contents = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var entry in manifest.Files)
        {
            var path = Path.Combine(folder, entry.Name);
            byte[] bytes;
            try { bytes = File.ReadAllBytes(path); }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new CheckpointInvalidException($"{entry.Name}: cannot read: {ex.Message}");
            }
            if (bytes.LongLength != entry.Length)
                throw new CheckpointInvalidException($"{entry.Name}: {bytes.LongLength} bytes, the manifest says {entry.Length}");
            if (!string.Equals(Convert.ToHexStringLower(SHA256.HashData(bytes)), entry.Sha256, StringComparison.OrdinalIgnoreCase))
                throw new CheckpointInvalidException($"{entry.Name}: SHA-256 differs from the manifest (the file was altered)");
            try { SafetensorsCodec.Decode(bytes); }
            catch (SafetensorsFormatException ex) { throw new CheckpointInvalidException($"{entry.Name}: {ex.Message}"); }
            contents[entry.Name] = bytes;
        }
        return contents;
    }

    private static CheckpointEvaluation? ReadEvaluation(string folder)
    {
        try
        {
            var path = Path.Combine(folder, EvaluationFileName);
            return File.Exists(path) ? JsonSerializer.Deserialize<CheckpointEvaluation>(File.ReadAllBytes(path), Json) : null;
        }
        catch (Exception ex) when (ex is JsonException or IOException) { return null; }   // re-evaluated later
    }

    private static void TryDeleteFolder(string folder)
    {
        try { Directory.Delete(folder, recursive: true); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
    }
}

using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace Orchestrator.Cluster.Packages;

/// <summary>
/// The coordinator's workload packages: <c>&lt;data-dir&gt;/packages/&lt;sha256&gt;.zip</c>, content-addressed.
/// A package is stored only when its bytes hash to the name it is uploaded under, within the size limit,
/// through a temporary file renamed at the end (never a half-written package under a valid name).
/// </summary>
public sealed partial class PackageStore(string root, long maxBytes)
{
    [GeneratedRegex("^[0-9a-f]{64}$")]
    private static partial Regex HashPattern();

    public string Root { get; } = root;
    public long MaxBytes { get; } = maxBytes;

    public static bool IsHash(string? sha256) => sha256 is not null && HashPattern().IsMatch(sha256);

    public string PathOf(string sha256) => IsHash(sha256) ? Path.Combine(Root, sha256 + ".zip") : throw new ArgumentException($"not a SHA-256: '{sha256}'");

    public bool Has(string sha256) => IsHash(sha256) && File.Exists(PathOf(sha256));

    /// <summary>The outcome of an upload: stored, already there, or refused with a reason (and whether it was too large).</summary>
    public sealed record SaveResult(bool Stored, bool AlreadyThere, string? Refusal, bool TooLarge = false, long Bytes = 0);

    /// <summary>Reads the upload (at most <see cref="MaxBytes"/>) and keeps it if its SHA-256 is <paramref name="sha256"/>.</summary>
    public async Task<SaveResult> SaveAsync(string sha256, Stream body, CancellationToken cancellation)
    {
        if (!IsHash(sha256)) return new SaveResult(false, false, "the package's name must be its SHA-256, 64 lower-case hex digits");
        if (Has(sha256)) return new SaveResult(false, true, null, Bytes: new FileInfo(PathOf(sha256)).Length);
        Directory.CreateDirectory(Root);
        var temp = Path.Combine(Root, $"{sha256}.zip.tmp-{Guid.NewGuid():N}");
        try
        {
            long length = 0;
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            await using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 81920, useAsync: true))
            {
                var buffer = new byte[81920];
                int n;
                while ((n = await body.ReadAsync(buffer, cancellation)) > 0)
                {
                    length += n;
                    if (length > MaxBytes) return new SaveResult(false, false, $"the package is larger than the limit of {MaxBytes} bytes (orchestrator.packages.max-bytes)", TooLarge: true);
                    hash.AppendData(buffer, 0, n);
                    await file.WriteAsync(buffer.AsMemory(0, n), cancellation);
                }
                await file.FlushAsync(cancellation);
                file.Flush(flushToDisk: true);
            }
            var actual = Convert.ToHexStringLower(hash.GetHashAndReset());
            if (actual != sha256) return new SaveResult(false, false, $"the bytes hash to {actual}, not to the name they were uploaded under ({sha256})");
            File.Move(temp, PathOf(sha256), overwrite: true);
            return new SaveResult(true, false, null, Bytes: length);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>Packages on disk with the time they were stored (for retention).</summary>
    public IReadOnlyList<(string Sha256, DateTime StoredAt)> List() =>
        !Directory.Exists(Root) ? [] : Directory.GetFiles(Root, "*.zip")
            .Select(f => (Sha256: Path.GetFileNameWithoutExtension(f), StoredAt: File.GetLastWriteTimeUtc(f)))
            .Where(p => IsHash(p.Sha256)).ToList();

    public void Delete(string sha256)
    {
        if (Has(sha256)) File.Delete(PathOf(sha256));
    }
}

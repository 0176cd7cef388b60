using System.IO.Compression;
using System.Security.Cryptography;
using Orchestrator.Core.Jobs;

namespace Orchestrator.Training.Workloads;

/// <summary>
/// A package's files on disk: a folder as it is, or a zip unpacked (safely: no entry outside its folder,
/// bounded in count and size) into a cache folder named by the zip's SHA-256.
/// </summary>
public static class PackageFiles
{
    public const int MaxEntries = 10_000;
    public const long MaxUnpackedBytes = 1L << 30;

    /// <summary>The folder that holds a package given by a local path (a folder, or a zip unpacked into the cache).</summary>
    public static string LocalFolder(string source)
    {
        if (source.StartsWith(JobSpecParser.PackageHashPrefix, StringComparison.Ordinal))
            throw new WorkloadLoadException($"package {source} is an uploaded package; it is fetched from the coordinator, not read from a path");
        var full = Path.GetFullPath(source);
        if (Directory.Exists(full)) return full;
        if (!File.Exists(full)) throw new WorkloadLoadException($"package {full}: no such folder or file");
        if (!IsZip(full)) throw new WorkloadLoadException($"package {full} is neither a folder nor a .zip file");
        var hash = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(full)));
        var target = Path.Combine(Path.GetTempPath(), "orchestrator-packages", hash);
        if (!Directory.Exists(target)) Unzip(full, target);
        return target;
    }

    public static bool IsZip(string path)
    {
        using var file = File.OpenRead(path);
        Span<byte> magic = stackalloc byte[4];
        return file.Read(magic) == 4 && magic[0] == (byte)'P' && magic[1] == (byte)'K' && magic[2] == 3 && magic[3] == 4;
    }

    /// <summary>Unpacks into <paramref name="target"/> through a temporary folder renamed at the end, so a half-unpacked package is never used.</summary>
    public static void Unzip(string zipPath, string target)
    {
        var temp = target + ".tmp-" + Guid.NewGuid().ToString("N");
        Directory.CreateDirectory(temp);
        try
        {
            using (var archive = OpenZip(zipPath))
            {
                if (archive.Entries.Count > MaxEntries) throw new WorkloadLoadException($"package {zipPath} has {archive.Entries.Count} entries, more than {MaxEntries}");
                long total = 0;
                var root = Path.GetFullPath(temp) + Path.DirectorySeparatorChar;
                foreach (var entry in archive.Entries)
                {
                    var destination = Path.GetFullPath(Path.Combine(temp, entry.FullName));
                    if (!destination.StartsWith(root, StringComparison.Ordinal) || Path.IsPathRooted(entry.FullName))
                        throw new WorkloadLoadException($"package {zipPath}: entry '{entry.FullName}' points outside the package's folder");
                    if (entry.FullName.EndsWith('/')) { Directory.CreateDirectory(destination); continue; }
                    total += entry.Length;
                    if (total > MaxUnpackedBytes) throw new WorkloadLoadException($"package {zipPath} unpacks to more than {MaxUnpackedBytes} bytes");
                    Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
                    using var input = entry.Open();
                    using var output = File.Create(destination);
                    CopyBounded(input, output, entry.Length, entry.FullName, zipPath);
                }
            }
            try { Directory.Move(temp, target); }
            catch (IOException) when (Directory.Exists(target)) { Directory.Delete(temp, true); }   // another process unpacked it first
        }
        catch
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, true);
            throw;
        }
    }

    private static ZipArchive OpenZip(string zipPath)
    {
        try { return ZipFile.OpenRead(zipPath); }
        catch (InvalidDataException ex) { throw new WorkloadLoadException($"package {zipPath} is not a readable zip file: {ex.Message}"); }
    }

    // The entry's declared length bounds what is written, whatever the compressed stream claims.
    private static void CopyBounded(Stream input, Stream output, long declared, string name, string zipPath)
    {
        var buffer = new byte[81920];
        long written = 0;
        int n;
        while ((n = input.Read(buffer)) > 0)
        {
            written += n;
            if (written > declared) throw new WorkloadLoadException($"package {zipPath}: entry '{name}' unpacks to more than its declared {declared} bytes");
            output.Write(buffer, 0, n);
        }
    }
}

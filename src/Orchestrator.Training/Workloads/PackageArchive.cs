using System.IO.Compression;
using System.Security.Cryptography;

namespace Orchestrator.Training.Workloads;

/// <summary>
/// A package as it is uploaded: a zip of a build's output folder holding only what the host does not
/// provide (never the SDK, TorchSharp, the runtime or libtorch), written the same way every time (sorted
/// entries, fixed times), so that one build always has one SHA-256 and is uploaded once.
/// </summary>
public static class PackageArchive
{
    private static readonly DateTimeOffset FixedTime = new(2000, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>The zip's bytes and its SHA-256 (lower-case hex). A .zip source is taken as it is.</summary>
    public static (byte[] Bytes, string Sha256) Pack(string source, long maxBytes)
    {
        var full = Path.GetFullPath(source);
        byte[] bytes;
        if (File.Exists(full))
        {
            if (!PackageFiles.IsZip(full)) throw new WorkloadLoadException($"package {full} is neither a folder nor a .zip file");
            var length = new FileInfo(full).Length;
            if (length > maxBytes) throw new WorkloadLoadException($"package {full} is {length} bytes, over the limit of {maxBytes}");
            bytes = File.ReadAllBytes(full);
        }
        else if (Directory.Exists(full)) bytes = Zip(full, maxBytes);
        else throw new WorkloadLoadException($"package {full}: no such folder or file");
        return (bytes, Convert.ToHexStringLower(SHA256.HashData(bytes)));
    }

    /// <summary>Whether the host provides this file, so that a package never carries it.</summary>
    public static bool HostProvides(string relativePath)
    {
        var name = Path.GetFileName(relativePath);
        if (name.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) && PackageLoadContext.IsShared(Path.GetFileNameWithoutExtension(name))) return true;
        // libtorch and TorchSharp's native library, should a build output hold them.
        return name.StartsWith("libtorch", StringComparison.Ordinal) || name.StartsWith("libLibTorchSharp", StringComparison.Ordinal)
            || name.StartsWith("libc10", StringComparison.Ordinal) || relativePath.Replace('\\', '/').StartsWith("runtimes/", StringComparison.Ordinal);
    }

    private static byte[] Zip(string folder, long maxBytes)
    {
        var files = Directory.GetFiles(folder, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(folder, f).Replace('\\', '/'))
            .Where(f => !HostProvides(f))
            .Order(StringComparer.Ordinal)
            .ToList();
        if (!files.Any(f => f.EndsWith(".dll", StringComparison.OrdinalIgnoreCase)))
            throw new WorkloadLoadException($"package folder {folder} holds no assembly (.dll) of its own: name a build's output folder");
        using var memory = new MemoryStream();
        using (var archive = new ZipArchive(memory, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var file in files)
            {
                var entry = archive.CreateEntry(file, CompressionLevel.Optimal);
                entry.LastWriteTime = FixedTime;
                using var output = entry.Open();
                using var input = File.OpenRead(Path.Combine(folder, file));
                input.CopyTo(output);
                if (memory.Length > maxBytes) throw new WorkloadLoadException($"package {folder} packs to more than the limit of {maxBytes} bytes");
            }
        }
        if (memory.Length > maxBytes) throw new WorkloadLoadException($"package {folder} packs to {memory.Length} bytes, over the limit of {maxBytes}");
        return memory.ToArray();
    }
}

/// <summary>
/// A node's cache of fetched packages, one folder per SHA-256 under <c>&lt;data-dir&gt;/packages/cache</c>.
/// A folder is made only from bytes whose hash matched, through a temporary folder renamed at the end,
/// so a folder that exists is a verified package.
/// </summary>
public sealed class PackageCache(string root)
{
    public string Root { get; } = root;

    public string FolderOf(string sha256) => Path.Combine(Root, sha256);

    public string? TryGet(string sha256) => Directory.Exists(FolderOf(sha256)) ? FolderOf(sha256) : null;

    /// <summary>Verifies <paramref name="zip"/> against <paramref name="sha256"/> and unpacks it; returns its folder.</summary>
    public string Install(string sha256, byte[] zip)
    {
        var actual = Convert.ToHexStringLower(SHA256.HashData(zip));
        if (actual != sha256)
            throw new WorkloadLoadException($"package sha256:{sha256} was refused: the bytes received hash to sha256:{actual} (damaged in the coordinator's store or on the way)");
        Directory.CreateDirectory(Root);
        var zipPath = Path.Combine(Root, $"{sha256}.zip.tmp-{Guid.NewGuid():N}");
        try
        {
            File.WriteAllBytes(zipPath, zip);
            if (!Directory.Exists(FolderOf(sha256))) PackageFiles.Unzip(zipPath, FolderOf(sha256));
        }
        finally { File.Delete(zipPath); }
        return FolderOf(sha256);
    }
}

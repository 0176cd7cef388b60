using System.Runtime.InteropServices;

namespace Orchestrator.Core.IO;

/// <summary>
/// Writes a file so that a reader sees either the old content or the whole new content, even across
/// a crash: temp file in the same folder, fsync, rename over the target, fsync of the folder.
/// </summary>
public static class AtomicFile
{
    public const string TempSuffix = ".tmp-orchestrator";

    public static void Write(string path, Action<Stream> writeContent)
    {
        var full = Path.GetFullPath(path);
        var folder = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(folder);
        var temp = Path.Combine(folder, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}{TempSuffix}");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                writeContent(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
            FsyncDirectory(folder);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        var copy = bytes.ToArray();
        Write(path, s => s.Write(copy));
    }

    /// <summary>Removes temp files left by a writer that crashed before its rename.</summary>
    public static int RemoveLeftovers(string folder)
    {
        if (!Directory.Exists(folder)) return 0;
        int removed = 0;
        foreach (var file in Directory.EnumerateFiles(folder, "*" + TempSuffix))
            if (TryDelete(file)) removed++;
        return removed;
    }

    /// <summary>Makes a folder's entries (a file or folder created, renamed or removed in it) durable.</summary>
    public static void FsyncDirectory(string folder)
    {
        // .NET cannot open a directory as a file, so the rename's durability needs open(2)+fsync(2).
        // Windows has no equivalent (NTFS journals metadata); there the rename is what we get.
        if (OperatingSystem.IsWindows()) return;
        int fd = Native.open(folder, 0 /* O_RDONLY */);
        if (fd < 0) throw new IOException($"cannot open folder {folder} to fsync it (errno {Marshal.GetLastPInvokeError()})");
        try
        {
            if (Native.fsync(fd) != 0)
                throw new IOException($"fsync of folder {folder} failed (errno {Marshal.GetLastPInvokeError()})");
        }
        finally { Native.close(fd); }
    }

    private static bool TryDelete(string file)
    {
        try { File.Delete(file); return true; }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }

    private static class Native
    {
        [DllImport("libc", SetLastError = true)] public static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);
        [DllImport("libc", SetLastError = true)] public static extern int fsync(int fd);
        [DllImport("libc")] public static extern int close(int fd);
    }
}

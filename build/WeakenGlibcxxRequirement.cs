// MSBuild inline task (RoslynCodeTaskFactory): see TorchSharp.Native.targets for why.
// Sets VER_FLG_WEAK on one version requirement (e.g. GLIBCXX_3.4.32) in the .gnu.version_r
// section of an ELF64 little-endian shared library, when the system's libstdc++ lacks that version.
using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class WeakenGlibcxxRequirement : Task
{
    [Required] public ITaskItem[] Files { get; set; } = Array.Empty<ITaskItem>();
    [Required] public string Version { get; set; } = "";

    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const ushort VerFlgWeak = 0x2;

    private static readonly string[] LibstdcxxCandidates =
    {
        "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/usr/lib/aarch64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6",
        "/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
    };

    public override bool Execute()
    {
        var systemLib = Array.Find(LibstdcxxCandidates, File.Exists);
        if (systemLib == null)
        {
            Log.LogMessage(MessageImportance.Normal, "libstdc++.so.6 not found in the usual places; TorchSharp shim left as shipped.");
            return true;
        }
        if (Contains(File.ReadAllBytes(systemLib), Encoding.ASCII.GetBytes(Version + "\0")))
        {
            Log.LogMessage(MessageImportance.Low, $"{systemLib} provides {Version}; TorchSharp shim left as shipped.");
            return true;
        }
        foreach (var item in Files)
        {
            var path = item.ItemSpec;
            try
            {
                var bytes = File.ReadAllBytes(path);
                var result = Weaken(bytes, Version);
                if (result == null)
                {
                    Log.LogMessage(MessageImportance.Normal, $"{path}: no {Version} requirement, left as is.");
                    continue;
                }
                if (result == false)
                {
                    Log.LogMessage(MessageImportance.Low, $"{path}: {Version} already weak.");
                    continue;
                }
                // Write a new file and rename it over the old one: the output copy may be a hard
                // link into the NuGet cache, which must never be modified.
                var tmp = path + ".patching";
                File.WriteAllBytes(tmp, bytes);
                File.Replace(tmp, path, null);
                Log.LogMessage(MessageImportance.High,
                    $"Marked {Version} weak in {path} (system libstdc++ at {systemLib} lacks it; see README, Troubleshooting).");
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException)
            {
                Log.LogError($"Could not patch {path}: {ex.Message}");
                return false;
            }
        }
        return !Log.HasLoggedErrors;
    }

    private static bool Contains(byte[] haystack, byte[] needle)
    {
        for (int i = 0; i <= haystack.Length - needle.Length; i++)
        {
            if (haystack[i] != needle[0]) continue;
            int j = 1;
            while (j < needle.Length && haystack[i + j] == needle[j]) j++;
            if (j == needle.Length) return true;
        }
        return false;
    }

    /// <returns>true if patched, false if already weak, null if the requirement is absent.</returns>
    private static bool? Weaken(byte[] elf, string version)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
            throw new InvalidDataException("not an ELF file");
        if (elf[4] != 2 || elf[5] != 1) throw new InvalidDataException("not ELF64 little-endian");
        long shoff = (long)BitConverter.ToUInt64(elf, 0x28);
        int shentsize = BitConverter.ToUInt16(elf, 0x3A), shnum = BitConverter.ToUInt16(elf, 0x3C);
        if (shoff <= 0 || shentsize < 64 || shoff + (long)shentsize * shnum > elf.Length)
            throw new InvalidDataException("section header table out of range");
        for (int s = 0; s < shnum; s++)
        {
            long sh = shoff + (long)s * shentsize;
            if (BitConverter.ToUInt32(elf, (int)sh + 4) != ShtGnuVerneed) continue;
            long offset = (long)BitConverter.ToUInt64(elf, (int)sh + 0x18);
            uint link = BitConverter.ToUInt32(elf, (int)sh + 0x28), count = BitConverter.ToUInt32(elf, (int)sh + 0x2C);
            long strtab = (long)BitConverter.ToUInt64(elf, (int)(shoff + link * (long)shentsize) + 0x18);
            long vn = offset;
            for (uint n = 0; n < count; n++)
            {
                int cnt = BitConverter.ToUInt16(elf, (int)vn + 2);
                long vna = vn + BitConverter.ToUInt32(elf, (int)vn + 8);
                for (int a = 0; a < cnt; a++)
                {
                    ushort flags = BitConverter.ToUInt16(elf, (int)vna + 4);
                    uint name = BitConverter.ToUInt32(elf, (int)vna + 8);
                    if (ReadCString(elf, strtab + name) == version)
                    {
                        if ((flags & VerFlgWeak) != 0) return false;
                        var patched = BitConverter.GetBytes((ushort)(flags | VerFlgWeak));
                        elf[vna + 4] = patched[0];
                        elf[vna + 5] = patched[1];
                        return true;
                    }
                    vna += BitConverter.ToUInt32(elf, (int)vna + 12);
                }
                vn += BitConverter.ToUInt32(elf, (int)vn + 12);
            }
        }
        return null;
    }

    private static string ReadCString(byte[] data, long at)
    {
        long end = at;
        while (end < data.Length && data[end] != 0) end++;
        return Encoding.ASCII.GetString(data, (int)at, (int)(end - at));
    }
}

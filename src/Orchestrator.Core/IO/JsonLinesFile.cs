using System.Text;
using System.Text.Json;

namespace Orchestrator.Core.IO;

/// <summary>
/// A file of one JSON document per line (the coordinator's metrics histories and job logs): appended line by line, rewritten
/// whole and atomically when its owner drops lines, read back skipping any line that does not parse (the last one, cut
/// short by a crash in the middle of an append).
/// </summary>
public static class JsonLinesFile
{
    /// <summary>Every line of <paramref name="path"/> that parses as <typeparamref name="T"/> (none when the file is missing).</summary>
    /// <exception cref="IOException">the file cannot be read.</exception>
    public static List<T> Read<T>(string path, JsonSerializerOptions options)
    {
        var items = new List<T>();
        if (!File.Exists(path)) return items;
        foreach (var line in File.ReadLines(path))
        {
            if (line.Length == 0) continue;
            try { if (JsonSerializer.Deserialize<T>(line, options) is { } item) items.Add(item); }
            catch (JsonException) { }
        }
        return items;
    }

    public static void Append<T>(string path, IEnumerable<T> items, JsonSerializerOptions options)
    {
        var text = new StringBuilder();
        foreach (var item in items) text.Append(JsonSerializer.Serialize(item, options)).Append('\n');
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        using var file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read);
        // A line cut short by a crash ends here first, so that it does not swallow the first line appended now.
        if (file.Length > 0)
        {
            file.Seek(-1, SeekOrigin.End);
            if (file.ReadByte() != '\n') text.Insert(0, '\n');
        }
        file.Seek(0, SeekOrigin.End);
        file.Write(Encoding.UTF8.GetBytes(text.ToString()));
    }

    public static void Rewrite<T>(string path, IEnumerable<T> items, JsonSerializerOptions options) =>
        AtomicFile.Write(path, stream =>
        {
            using var writer = new StreamWriter(stream, new UTF8Encoding(false), leaveOpen: true);
            foreach (var item in items) writer.Write(JsonSerializer.Serialize(item, options) + "\n");
        });
}

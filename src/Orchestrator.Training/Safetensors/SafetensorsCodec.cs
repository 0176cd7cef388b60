using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace Orchestrator.Training.Safetensors;

/// <summary>One named tensor: dtype as safetensors spells it (F32, I64, …), shape, and little-endian bytes.</summary>
public sealed record SafetensorsTensor(string Name, string Dtype, long[] Shape, ReadOnlyMemory<byte> Data);

/// <summary>A decoded file: tensors in file order, and the free-form string metadata.</summary>
public sealed record SafetensorsContent(IReadOnlyList<SafetensorsTensor> Tensors, IReadOnlyDictionary<string, string> Metadata)
{
    public SafetensorsTensor this[string name] => Tensors.FirstOrDefault(t => t.Name == name)
        ?? throw new KeyNotFoundException($"no tensor named '{name}'");
}

/// <summary>A file that is not valid safetensors. Nothing from it has been used.</summary>
public sealed class SafetensorsFormatException(string message) : Exception(message);

/// <summary>
/// Our own codec for the safetensors format (TorchSharp has none): an 8-byte little-endian header
/// length N, N bytes of UTF-8 JSON (padded with spaces to a multiple of 8), then the tensors' bytes.
/// The reader is strict and runs before any tensor is created (PRODUCT.md section 5).
/// </summary>
public static class SafetensorsCodec
{
    public const long MaxHeaderBytes = 100_000_000;
    private const string MetadataKey = "__metadata__";

    private static readonly Dictionary<string, int> DtypeSizes = new(StringComparer.Ordinal)
    {
        ["BOOL"] = 1, ["U8"] = 1, ["I8"] = 1, ["F8_E4M3"] = 1, ["F8_E5M2"] = 1,
        ["I16"] = 2, ["U16"] = 2, ["F16"] = 2, ["BF16"] = 2,
        ["I32"] = 4, ["U32"] = 4, ["F32"] = 4,
        ["I64"] = 8, ["U64"] = 8, ["F64"] = 8,
    };

    public static int DtypeSize(string dtype) =>
        DtypeSizes.TryGetValue(dtype, out var size) ? size : throw new ArgumentException($"unknown safetensors dtype '{dtype}'");

    public static void Write(Stream output, IReadOnlyList<SafetensorsTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = BuildHeader(tensors, metadata);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        output.Write(length);
        output.Write(header);
        foreach (var t in tensors) output.Write(t.Data.Span);
    }

    public static byte[] Encode(IReadOnlyList<SafetensorsTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var memory = new MemoryStream();
        Write(memory, tensors, metadata);
        return memory.ToArray();
    }

    private static byte[] BuildHeader(IReadOnlyList<SafetensorsTensor> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject(MetadataKey);
                foreach (var (key, value) in metadata) json.WriteString(key, value);
                json.WriteEndObject();
            }
            long offset = 0;
            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (var t in tensors)
            {
                if (t.Name == MetadataKey || !names.Add(t.Name)) throw new ArgumentException($"tensor name '{t.Name}' is reserved or repeated");
                long expected = ByteSize(t.Dtype, t.Shape) ?? throw new ArgumentException($"tensor '{t.Name}': shape overflows");
                if (expected != t.Data.Length)
                    throw new ArgumentException($"tensor '{t.Name}': {t.Data.Length} bytes for shape [{string.Join(",", t.Shape)}] of {t.Dtype} (expected {expected})");
                json.WriteStartObject(t.Name);
                json.WriteString("dtype", t.Dtype);
                json.WriteStartArray("shape");
                foreach (var d in t.Shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + t.Data.Length);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += t.Data.Length;
            }
            json.WriteEndObject();
        }
        // The format pads the header with spaces so that the data starts 8-byte aligned.
        int padding = (int)((8 - buffer.Length % 8) % 8);
        for (int i = 0; i < padding; i++) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }

    /// <summary>Bytes for a shape, or null when the product overflows.</summary>
    public static long? ByteSize(string dtype, IReadOnlyList<long> shape)
    {
        long size = DtypeSize(dtype);
        try
        {
            foreach (var d in shape)
            {
                if (d < 0) return null;
                size = checked(size * d);
            }
            return size;
        }
        catch (OverflowException) { return null; }
    }

    /// <summary>Decodes and validates a whole file. Throws <see cref="SafetensorsFormatException"/> naming the first problem.</summary>
    public static SafetensorsContent Decode(byte[] file)
    {
        if (file.Length < 8) throw new SafetensorsFormatException($"file is {file.Length} bytes, shorter than the 8-byte header length");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(file);
        if (headerLength > MaxHeaderBytes)
            throw new SafetensorsFormatException($"header length {headerLength} exceeds the limit of {MaxHeaderBytes} bytes");
        if (8 + (long)headerLength > file.Length)
            throw new SafetensorsFormatException($"header length {headerLength} runs past the end of the file ({file.Length} bytes)");
        var header = file.AsMemory(8, (int)headerLength);
        if (header.Length == 0 || header.Span[0] != (byte)'{')
            throw new SafetensorsFormatException("header does not start with '{'");
        try { new UTF8Encoding(false, throwOnInvalidBytes: true).GetCharCount(header.Span); }
        catch (DecoderFallbackException) { throw new SafetensorsFormatException("header is not valid UTF-8"); }

        var (entries, metadata) = ParseHeader(header.Span);
        long dataLength = file.Length - 8 - (long)headerLength;
        var sorted = entries.OrderBy(e => e.Begin).ThenBy(e => e.End).ToList();
        long expectedBegin = 0;
        foreach (var e in sorted)
        {
            if (e.End < e.Begin) throw new SafetensorsFormatException($"tensor '{e.Name}': data_offsets end {e.End} is before begin {e.Begin}");
            if (e.Begin < expectedBegin) throw new SafetensorsFormatException($"tensor '{e.Name}': data overlaps the previous tensor (begins at {e.Begin}, previous ends at {expectedBegin})");
            if (e.Begin > expectedBegin) throw new SafetensorsFormatException($"tensor '{e.Name}': gap of {e.Begin - expectedBegin} bytes before its data (begins at {e.Begin}, previous ends at {expectedBegin})");
            var size = ByteSize(e.Dtype, e.Shape) ?? throw new SafetensorsFormatException($"tensor '{e.Name}': shape [{string.Join(",", e.Shape)}] overflows");
            if (size != e.End - e.Begin)
                throw new SafetensorsFormatException($"tensor '{e.Name}': shape [{string.Join(",", e.Shape)}] of {e.Dtype} is {size} bytes but data_offsets span {e.End - e.Begin}");
            expectedBegin = e.End;
        }
        if (expectedBegin != dataLength)
            throw new SafetensorsFormatException(expectedBegin < dataLength
                ? $"{dataLength - expectedBegin} bytes after the last tensor's data"
                : $"file is truncated: tensors need {expectedBegin} data bytes, file has {dataLength}");

        long dataStart = 8 + (long)headerLength;
        var tensors = entries.Select(e => new SafetensorsTensor(e.Name, e.Dtype, e.Shape,
            file.AsMemory((int)(dataStart + e.Begin), (int)(e.End - e.Begin)))).ToList();
        return new SafetensorsContent(tensors, metadata);
    }

    public static SafetensorsContent ReadFile(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new SafetensorsFormatException($"cannot read {path}: {ex.Message}");
        }
        try { return Decode(bytes); }
        catch (SafetensorsFormatException ex) { throw new SafetensorsFormatException($"{path}: {ex.Message}"); }
    }

    private sealed record Entry(string Name, string Dtype, long[] Shape, long Begin, long End);

    private static (List<Entry>, Dictionary<string, string>) ParseHeader(ReadOnlySpan<byte> header)
    {
        var reader = new Utf8JsonReader(header, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 8 });
        var entries = new List<Entry>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var names = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            Expect(ref reader, JsonTokenType.StartObject, "header");
            while (Read(ref reader) && reader.TokenType != JsonTokenType.EndObject)
            {
                var name = reader.GetString()!;
                if (!names.Add(name)) throw new SafetensorsFormatException($"duplicate name '{name}' in header");
                if (name == MetadataKey) ReadMetadata(ref reader, metadata);
                else entries.Add(ReadEntry(ref reader, name));
            }
            if (reader.Read()) throw new SafetensorsFormatException("content after the header's JSON object");
        }
        catch (JsonException ex)
        {
            throw new SafetensorsFormatException($"header is not valid JSON: {ex.Message}");
        }
        // Whatever follows the JSON object must be the format's space padding.
        var rest = header[(int)reader.BytesConsumed..];
        foreach (var b in rest)
            if (b != (byte)' ') throw new SafetensorsFormatException("header is padded with something other than spaces");
        return (entries, metadata);
    }

    private static void ReadMetadata(ref Utf8JsonReader reader, Dictionary<string, string> metadata)
    {
        Expect(ref reader, JsonTokenType.StartObject, MetadataKey);
        while (Read(ref reader) && reader.TokenType != JsonTokenType.EndObject)
        {
            var key = reader.GetString()!;
            Expect(ref reader, JsonTokenType.String, $"{MetadataKey}.{key}");
            if (!metadata.TryAdd(key, reader.GetString()!)) throw new SafetensorsFormatException($"duplicate metadata key '{key}'");
        }
    }

    private static Entry ReadEntry(ref Utf8JsonReader reader, string name)
    {
        Expect(ref reader, JsonTokenType.StartObject, name);
        string? dtype = null;
        long[]? shape = null, offsets = null;
        while (Read(ref reader) && reader.TokenType != JsonTokenType.EndObject)
        {
            var field = reader.GetString()!;
            switch (field)
            {
                case "dtype" when dtype is null:
                    Expect(ref reader, JsonTokenType.String, $"{name}.dtype");
                    dtype = reader.GetString()!;
                    if (!DtypeSizes.ContainsKey(dtype)) throw new SafetensorsFormatException($"tensor '{name}': unknown dtype '{dtype}'");
                    break;
                case "shape" when shape is null:
                    shape = ReadLongs(ref reader, $"{name}.shape");
                    break;
                case "data_offsets" when offsets is null:
                    offsets = ReadLongs(ref reader, $"{name}.data_offsets");
                    if (offsets.Length != 2) throw new SafetensorsFormatException($"tensor '{name}': data_offsets must have 2 numbers, has {offsets.Length}");
                    break;
                default:
                    throw new SafetensorsFormatException($"tensor '{name}': unexpected or repeated field '{field}'");
            }
        }
        if (dtype is null || shape is null || offsets is null)
            throw new SafetensorsFormatException($"tensor '{name}': needs dtype, shape and data_offsets");
        return new Entry(name, dtype, shape, offsets[0], offsets[1]);
    }

    private static long[] ReadLongs(ref Utf8JsonReader reader, string what)
    {
        Expect(ref reader, JsonTokenType.StartArray, what);
        var values = new List<long>();
        while (Read(ref reader) && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out var v) || v < 0)
                throw new SafetensorsFormatException($"{what}: expected non-negative integers");
            values.Add(v);
        }
        return values.ToArray();
    }

    private static bool Read(ref Utf8JsonReader reader)
    {
        if (!reader.Read()) throw new SafetensorsFormatException("header JSON ends early");
        return true;
    }

    private static void Expect(ref Utf8JsonReader reader, JsonTokenType type, string what)
    {
        Read(ref reader);
        if (reader.TokenType != type) throw new SafetensorsFormatException($"{what}: expected {type}, found {reader.TokenType}");
    }
}

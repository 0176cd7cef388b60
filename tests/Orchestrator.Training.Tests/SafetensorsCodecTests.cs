using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Orchestrator.Training.Safetensors;

namespace Orchestrator.Training.Tests;

public class SafetensorsCodecTests
{
    private static SafetensorsTensor F32(string name, long[] shape, params float[] values) =>
        new(name, "F32", shape, MemoryMarshal.AsBytes(values.AsSpan()).ToArray());

    private static readonly SafetensorsTensor[] Sample =
    [
        F32("fc1.weight", [2, 3], 1, 2, 3, 4, 5, 6),
        F32("fc1.bias", [2], -1.5f, 0.25f),
        new("step", "I64", [], BitConverter.GetBytes(1234L)),
    ];

    private static byte[] Valid() => SafetensorsCodec.Encode(Sample, new Dictionary<string, string> { ["format"] = "pt" });

    [Fact]
    public void Round_trips_names_dtypes_shapes_values_and_metadata()
    {
        var content = SafetensorsCodec.Decode(Valid());
        Assert.Equal(Sample.Select(t => t.Name), content.Tensors.Select(t => t.Name));
        foreach (var (expected, actual) in Sample.Zip(content.Tensors))
        {
            Assert.Equal(expected.Dtype, actual.Dtype);
            Assert.Equal(expected.Shape, actual.Shape);
            Assert.Equal(expected.Data.ToArray(), actual.Data.ToArray());
        }
        Assert.Equal("pt", content.Metadata["format"]);
    }

    [Fact]
    public void Layout_follows_the_format_specification()
    {
        // What Python's safetensors expects: u64 little-endian header size N; N bytes of JSON starting
        // with '{', padded with spaces so the data is 8-byte aligned; each entry has dtype, shape and
        // data_offsets relative to the start of the byte buffer; the buffer holds exactly the tensors.
        var file = Valid();
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(file);
        Assert.Equal(0ul, (8 + n) % 8);
        var header = Encoding.UTF8.GetString(file, 8, (int)n);
        Assert.StartsWith("{", header);
        using var json = JsonDocument.Parse(header.TrimEnd(' '));
        var weight = json.RootElement.GetProperty("fc1.weight");
        Assert.Equal("F32", weight.GetProperty("dtype").GetString());
        Assert.Equal([2, 3], weight.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal([0, 24], weight.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal("pt", json.RootElement.GetProperty("__metadata__").GetProperty("format").GetString());
        Assert.Equal(24 + 8 + 8, file.Length - 8 - (int)n);
        Assert.Equal(1f, BitConverter.ToSingle(file, 8 + (int)n));   // little-endian float32 data
    }

    /// <summary>Replaces the header with <paramref name="header"/> (recomputing N) and keeps the data.</summary>
    private static byte[] WithHeader(string header, byte[]? data = null)
    {
        var file = Valid();
        int n = (int)BinaryPrimitives.ReadUInt64LittleEndian(file);
        data ??= file[(8 + n)..];
        var h = Encoding.UTF8.GetBytes(header);
        var result = new byte[8 + h.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(result, (ulong)h.Length);
        h.CopyTo(result, 8);
        data.CopyTo(result, 8 + h.Length);
        return result;
    }

    private static byte[] WithLength(ulong length)
    {
        var file = Valid();
        BinaryPrimitives.WriteUInt64LittleEndian(file, length);
        return file;
    }

    private const string A = "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";

    public static TheoryData<string, byte[], string> Mutants => new()
    {
        { "truncated by one byte", Valid()[..^1], "truncated" },
        { "one trailing byte", [.. Valid(), 0], "1 bytes after the last tensor" },
        { "header length 100_000_001", WithLength(100_000_001), "exceeds the limit" },
        { "header length past the end", WithLength(10_000), "runs past the end" },
        { "header length 2^64-1", WithLength(ulong.MaxValue), "exceeds the limit" },
        { "shorter than 8 bytes", [1, 2, 3], "shorter than the 8-byte" },
        { "header not UTF-8", Corrupt(Valid()), "not valid UTF-8" },
        { "header starts with a space", WithHeader(" {" + A + "}", new byte[8]), "does not start with '{'" },
        { "header is an array", WithHeader("[" + A + "]", new byte[8]), "does not start with '{'" },
        { "duplicate name", WithHeader("{" + A + "," + A + "}", new byte[8]), "duplicate name 'a'" },
        { "gap between tensors", WithHeader("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", new byte[8]), "gap of 4 bytes" },
        { "overlapping offsets", WithHeader("{" + A + ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", new byte[12]), "overlaps" },
        { "end before begin", WithHeader("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", new byte[8]), "is before begin" },
        { "size not shape x dtype", WithHeader("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", new byte[8]), "is 12 bytes but data_offsets span 8" },
        { "shape product overflows", WithHeader("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,8]}}", new byte[8]), "overflows" },
        { "unknown dtype", WithHeader("{\"a\":{\"dtype\":\"F31\",\"shape\":[2],\"data_offsets\":[0,8]}}", new byte[8]), "unknown dtype 'F31'" },
        { "negative dimension", WithHeader("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", new byte[8]), "non-negative" },
        { "missing data_offsets", WithHeader("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", new byte[8]), "needs dtype, shape and data_offsets" },
        { "extra entry field", WithHeader("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", new byte[8]), "unexpected or repeated field 'x'" },
        { "not JSON", WithHeader("{\"a\":", new byte[8]), "not valid JSON" },
        { "metadata value not a string", WithHeader("{\"__metadata__\":{\"k\":1}," + A + "}", new byte[8]), "__metadata__.k" },
        { "padding that is not spaces", WithHeader("{" + A + "}\n\n\n\nX", new byte[8]), "JSON" },
    };

    private static byte[] Corrupt(byte[] file)
    {
        // Put an invalid UTF-8 byte (0xFF) inside the header's first string.
        int at = Array.IndexOf(file, (byte)'"', 8) + 1;
        var copy = (byte[])file.Clone();
        copy[at] = 0xFF;
        return copy;
    }

    [Theory]
    [MemberData(nameof(Mutants))]
    public void The_strict_loader_rejects_each_mutant_with_its_own_message(string mutant, byte[] file, string fragment)
    {
        var ex = Assert.Throws<SafetensorsFormatException>(() => SafetensorsCodec.Decode(file));
        Assert.True(ex.Message.Contains(fragment), $"{mutant}: expected '{fragment}' in '{ex.Message}'");
    }

    [Fact]
    public void Thousands_of_seeded_random_truncations_and_header_flips_never_crash_and_truncations_never_pass()
    {
        var valid = Valid();
        int headerEnd = 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(valid);
        var random = new Random(1234);
        for (int i = 0; i < 3000; i++)
        {
            var truncated = valid[..random.Next(0, valid.Length)];
            Assert.Throws<SafetensorsFormatException>(() => SafetensorsCodec.Decode(truncated));

            var flipped = (byte[])valid.Clone();
            int at = random.Next(0, headerEnd);
            flipped[at] ^= (byte)(1 << random.Next(8));
            try
            {
                var content = SafetensorsCodec.Decode(flipped);
                // A flip can leave a valid file (a letter of a name or of metadata); then it must still describe the data exactly.
                Assert.Equal(valid.Length - headerEnd, content.Tensors.Sum(t => t.Data.Length));
            }
            catch (SafetensorsFormatException) { }
        }
    }
}

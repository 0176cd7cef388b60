using System.Buffers.Binary;
using System.Numerics;
using System.Text;

namespace Orchestrator.TestSupport;

/// <summary>One scalar as TensorBoard would plot it.</summary>
public sealed record TensorBoardScalar(string Tag, long Step, float Value, double WallTime);

/// <summary>
/// A reader of TensorBoard event files of our own, written from the record format rather than from any writer's code:
/// each record is a little-endian uint64 length, the masked CRC-32C of those 8 bytes, the data, and the masked CRC-32C
/// of the data (masked = rotate right by 15 bits, plus 0xa282ead8); the data is an <c>Event</c> protobuf (wall_time 1
/// double, step 2 int64, file_version 3 string, summary 5: repeated value 1 {tag 1 string, simple_value 2 float}).
/// Every checksum is checked; a file whose checksums fail throws.
/// </summary>
public static class TensorBoardEvents
{
    /// <summary>Every scalar in every event file under <paramref name="folder"/>, file by file in name order.</summary>
    public static List<TensorBoardScalar> ReadFolder(string folder) =>
        Directory.GetFiles(folder, "events.out.tfevents.*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).SelectMany(ReadFile).ToList();

    public static List<TensorBoardScalar> ReadFile(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var scalars = new List<TensorBoardScalar>();
        var at = 0;
        var sawVersion = false;
        while (at < bytes.Length)
        {
            if (bytes.Length - at < 12) throw new InvalidDataException($"{path}: a record header cut short at byte {at}");
            var length = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(at, 8));
            if (Masked(bytes.AsSpan(at, 8)) != BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 8, 4)))
                throw new InvalidDataException($"{path}: the length's checksum at byte {at} does not match");
            if (length > (ulong)(bytes.Length - at - 16)) throw new InvalidDataException($"{path}: a record of {length} bytes at byte {at} runs past the end");
            var data = bytes.AsSpan(at + 12, (int)length);
            if (Masked(data) != BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 12 + (int)length, 4)))
                throw new InvalidDataException($"{path}: the data's checksum at byte {at} does not match");
            var (wallTime, step, version, values) = ParseEvent(data);
            sawVersion |= version == "brain.Event:2";
            scalars.AddRange(values.Select(v => new TensorBoardScalar(v.Tag, step, v.Value, wallTime)));
            at += 16 + (int)length;
        }
        if (!sawVersion) throw new InvalidDataException($"{path}: no file_version event");
        return scalars;
    }

    private static uint Masked(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var b in data) crc = BitOperations.Crc32C(crc, b);
        crc = ~crc;
        return ((crc >> 15) | (crc << 17)) + 0xa282ead8;
    }

    private static (double WallTime, long Step, string? Version, List<(string Tag, float Value)> Values) ParseEvent(ReadOnlySpan<byte> data)
    {
        double wallTime = 0;
        long step = 0;
        string? version = null;
        var values = new List<(string, float)>();
        var reader = new Protobuf(data.ToArray());
        while (reader.Next(out var field, out var wire))
            switch (field, wire)
            {
                case (1, 1): wallTime = BitConverter.Int64BitsToDouble((long)reader.Fixed64()); break;
                case (2, 0): step = (long)reader.Varint(); break;
                case (3, 2): version = Encoding.UTF8.GetString(reader.Bytes()); break;
                case (5, 2):
                    var summary = new Protobuf(reader.Bytes());
                    while (summary.Next(out var f, out var w))
                        if ((f, w) == (1, 2)) values.Add(ParseValue(summary.Bytes()));
                        else summary.Skip(w);
                    break;
                default: reader.Skip(wire); break;
            }
        return (wallTime, step, version, values);
    }

    private static (string Tag, float Value) ParseValue(byte[] data)
    {
        string tag = "";
        float value = float.NaN;
        var reader = new Protobuf(data);
        while (reader.Next(out var field, out var wire))
            switch (field, wire)
            {
                case (1, 2): tag = Encoding.UTF8.GetString(reader.Bytes()); break;
                case (2, 5): value = BitConverter.Int32BitsToSingle((int)reader.Fixed32()); break;
                default: reader.Skip(wire); break;
            }
        return (tag, value);
    }

    /// <summary>The protobuf wire format: a key (field number and wire type) as a varint, then the value.</summary>
    private sealed class Protobuf(byte[] data)
    {
        private int _at;

        public bool Next(out int field, out int wire)
        {
            field = wire = 0;
            if (_at >= data.Length) return false;
            var key = Varint();
            field = (int)(key >> 3);
            wire = (int)(key & 7);
            return true;
        }

        public ulong Varint()
        {
            ulong value = 0;
            for (var shift = 0; shift < 64; shift += 7)
            {
                var b = data[_at++];
                value |= (ulong)(b & 0x7f) << shift;
                if (b < 0x80) return value;
            }
            throw new InvalidDataException("a varint longer than 10 bytes");
        }

        public ulong Fixed64() { var v = BinaryPrimitives.ReadUInt64LittleEndian(data.AsSpan(_at, 8)); _at += 8; return v; }
        public uint Fixed32() { var v = BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(_at, 4)); _at += 4; return v; }
        public byte[] Bytes() { var n = (int)Varint(); var v = data.AsSpan(_at, n).ToArray(); _at += n; return v; }

        public void Skip(int wire)
        {
            switch (wire)
            {
                case 0: Varint(); break;
                case 1: _at += 8; break;
                case 2: Bytes(); break;
                case 5: _at += 4; break;
                default: throw new InvalidDataException($"wire type {wire}");
            }
        }
    }
}

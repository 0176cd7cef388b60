using System.Numerics;
using System.Runtime.InteropServices;

namespace Orchestrator.Collectives;

/// <summary>How gradient values travel between ranks: float32 as they are, or rounded to 16 bits.</summary>
public enum WireFormat
{
    Float32,
    /// <summary>bfloat16: float32's exponent range with 8 bits of mantissa; what large-model training uses.</summary>
    BFloat16,
    /// <summary>IEEE half: 11 bits of mantissa but a range of ±65,504 (larger magnitudes become infinities).</summary>
    Float16,
}

/// <summary>
/// The conversions of <see cref="WireFormat"/>: float32 to 16-bit wire values (round to nearest, ties to
/// even, as PyTorch's <c>.to(torch.bfloat16)</c> and <c>.half()</c> do) and back. Sums are never taken in 16
/// bits: a received value is widened to float32 before it is added. Both ends and <c>orchestrator run</c>'s
/// emulation of the ring call exactly these functions, so every rank rounds the same way.
/// </summary>
public static class WireCodec
{
    /// <summary>The job-file names of the formats (<c>allReduce.compression</c>).</summary>
    public static readonly IReadOnlyList<string> Names = ["none", "bf16", "fp16"];

    public static WireFormat Parse(string name) => name switch
    {
        "none" => WireFormat.Float32,
        "bf16" => WireFormat.BFloat16,
        "fp16" => WireFormat.Float16,
        _ => throw new ArgumentException($"unknown compression '{name}' (expected one of {string.Join(", ", Names)})"),
    };

    public static string Name(WireFormat format) => format switch
    {
        WireFormat.BFloat16 => "bf16",
        WireFormat.Float16 => "fp16",
        _ => "none",
    };

    public static int BytesPerValue(WireFormat format) => format == WireFormat.Float32 ? sizeof(float) : sizeof(ushort);

    /// <summary>Writes <paramref name="source"/> in 16 bits into <paramref name="target"/> (2 bytes per value, little-endian).</summary>
    public static void Encode(WireFormat format, ReadOnlySpan<float> source, Span<byte> target)
    {
        var wire = MemoryMarshal.Cast<byte, ushort>(target[..(source.Length * sizeof(ushort))]);
        if (format == WireFormat.BFloat16) EncodeBFloat16(source, wire);
        else if (format == WireFormat.Float16) EncodeHalf(source, wire);
        else throw new ArgumentException("float32 values travel as they are", nameof(format));
    }

    /// <summary><paramref name="target"/>[i] += the value of <paramref name="wire"/>[i], in float32.</summary>
    public static void AddDecoded(WireFormat format, ReadOnlySpan<byte> wire, Span<float> target, Span<float> scratch)
    {
        var decoded = scratch[..target.Length];
        Decode(format, wire, decoded);
        Add(target, decoded);
    }

    /// <summary>Widens 16-bit wire values to float32 (exact).</summary>
    public static void Decode(WireFormat format, ReadOnlySpan<byte> wire, Span<float> target)
    {
        var values = MemoryMarshal.Cast<byte, ushort>(wire[..(target.Length * sizeof(ushort))]);
        if (format == WireFormat.BFloat16) DecodeBFloat16(values, target);
        else if (format == WireFormat.Float16) DecodeHalf(values, target);
        else throw new ArgumentException("float32 values travel as they are", nameof(format));
    }

    /// <summary>Rounds float32 values in place to what the wire can carry: the owner of a segment keeps exactly what it sends.</summary>
    public static void Round(WireFormat format, Span<float> values, Span<byte> scratch)
    {
        for (int start = 0; start < values.Length; start += scratch.Length / sizeof(ushort))
        {
            var part = values.Slice(start, Math.Min(scratch.Length / sizeof(ushort), values.Length - start));
            Encode(format, part, scratch);
            Decode(format, scratch, part);
        }
    }

    /// <summary>target += source, element-wise, in float32 (the same addition the float32 ring does).</summary>
    public static void Add(Span<float> target, ReadOnlySpan<float> source)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var t = MemoryMarshal.Cast<float, Vector<float>>(target);
            var s = MemoryMarshal.Cast<float, Vector<float>>(source[..target.Length]);
            for (int v = 0; v < t.Length; v++) t[v] += s[v];
            i = t.Length * Vector<float>.Count;
        }
        for (; i < target.Length; i++) target[i] += source[i];
    }

    /// <summary>One value to bfloat16: the upper half of the float32 bits after rounding to nearest, ties to even; NaN stays NaN.</summary>
    public static ushort ToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if ((bits & 0x7FFF_FFFF) > 0x7F80_0000) return (ushort)((bits >> 16) | 0x0040);   // NaN: keep it one (quiet) after the cut
        return (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    }

    public static float FromBFloat16(ushort value) => BitConverter.UInt32BitsToSingle((uint)value << 16);

    private static void EncodeBFloat16(ReadOnlySpan<float> source, Span<ushort> target)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && source.Length >= 2 * Vector<uint>.Count)
        {
            var bits = MemoryMarshal.Cast<float, Vector<uint>>(source);
            var output = MemoryMarshal.Cast<ushort, Vector<ushort>>(target);
            var bias = new Vector<uint>(0x7FFF);
            var one = Vector<uint>.One;
            var absMask = new Vector<uint>(0x7FFF_FFFF);
            var infinity = new Vector<uint>(0x7F80_0000);
            var quiet = new Vector<uint>(0x0040_0000);
            int pairs = bits.Length / 2;
            for (int v = 0; v < pairs; v++)
            {
                output[v] = Vector.Narrow(Round(bits[2 * v]), Round(bits[2 * v + 1]));
            }
            i = pairs * 2 * Vector<uint>.Count;

            Vector<uint> Round(Vector<uint> b)
            {
                var rounded = (b + bias + ((b >> 16) & one)) >> 16;
                var nan = Vector.GreaterThan(b & absMask, infinity);
                return Vector.ConditionalSelect(nan, (b | quiet) >> 16, rounded);
            }
        }
        for (; i < source.Length; i++) target[i] = ToBFloat16(source[i]);
    }

    private static void DecodeBFloat16(ReadOnlySpan<ushort> source, Span<float> target)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && source.Length >= Vector<ushort>.Count)
        {
            var input = MemoryMarshal.Cast<ushort, Vector<ushort>>(source);
            var output = MemoryMarshal.Cast<float, Vector<uint>>(target);
            for (int v = 0; v < input.Length; v++)
            {
                Vector.Widen(input[v], out var low, out var high);
                output[2 * v] = low << 16;
                output[2 * v + 1] = high << 16;
            }
            i = input.Length * Vector<ushort>.Count;
        }
        for (; i < source.Length; i++) target[i] = FromBFloat16(source[i]);
    }

    private static void EncodeHalf(ReadOnlySpan<float> source, Span<ushort> target) =>
        System.Numerics.Tensors.TensorPrimitives.ConvertToHalf(source, MemoryMarshal.Cast<ushort, Half>(target[..source.Length]));

    private static void DecodeHalf(ReadOnlySpan<ushort> source, Span<float> target) =>
        System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<ushort, Half>(source), target[..source.Length]);
}

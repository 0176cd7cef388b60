using Orchestrator.Collectives;

namespace Orchestrator.Collectives.Tests;

public class WireCodecTests
{
    [Fact]
    public void Every_compression_the_job_file_may_name_has_a_wire_format_and_no_other()
    {
        // The job file's parser lives in Core, which cannot see the codec: the two lists are tied here.
        Assert.Equal(WireCodec.Names, Orchestrator.Core.Jobs.JobSpecParser.Compressions);
        Assert.All(WireCodec.Names, name => Assert.Equal(name, WireCodec.Name(WireCodec.Parse(name))));
    }

    [Theory]
    // value, bfloat16 bits: exact, rounding down, up, ties to even both ways, the largest finite value, overflow, tiny values.
    [InlineData(1.0f, 0x3F80)]
    [InlineData(-2.0f, 0xC000)]
    [InlineData(0.0f, 0x0000)]
    [InlineData(-0.0f, 0x8000)]
    [InlineData(float.PositiveInfinity, 0x7F80)]
    [InlineData(float.NegativeInfinity, 0xFF80)]
    [InlineData(3.4028235e38f, 0x7F80)]          // float32's largest rounds past bfloat16's largest: infinity
    [InlineData(1e-40f, 0x0001)]                 // a float32 subnormal keeps its top bits
    public void BFloat16_rounds_to_nearest_even(float value, int bits)
    {
        Assert.Equal((ushort)bits, WireCodec.ToBFloat16(value));
    }

    [Fact]
    public void BFloat16_ties_go_to_the_even_neighbour_and_others_to_the_nearest()
    {
        // 1 + 2^-8 lies halfway between 1 (even mantissa) and 1 + 2^-7: it goes down; 1 + 3·2^-8 lies halfway
        // between 1 + 2^-7 (odd) and 1 + 2^-6 (even): it goes up; a hair above a tie always goes up.
        Assert.Equal(0x3F80, WireCodec.ToBFloat16(1f + MathF.Pow(2, -8)));
        Assert.Equal(0x3F82, WireCodec.ToBFloat16(1f + 3 * MathF.Pow(2, -8)));
        Assert.Equal(0x3F81, WireCodec.ToBFloat16(BitConverter.UInt32BitsToSingle(0x3F80_8001)));
        Assert.Equal(0x3F80, WireCodec.ToBFloat16(BitConverter.UInt32BitsToSingle(0x3F80_7FFF)));
    }

    [Fact]
    public void NaN_stays_NaN_whatever_its_payload()
    {
        foreach (var bits in new uint[] { 0x7FC0_0000, 0x7F80_0001, 0xFFFF_FFFF, 0x7FFF_FFFF })
            Assert.True(float.IsNaN(WireCodec.FromBFloat16(WireCodec.ToBFloat16(BitConverter.UInt32BitsToSingle(bits)))), $"{bits:x8}");
        var values = Enumerable.Repeat(float.NaN, 100).ToArray();
        var wire = new byte[200];
        WireCodec.Encode(WireFormat.BFloat16, values, wire);
        var back = new float[100];
        WireCodec.Decode(WireFormat.BFloat16, wire, back);
        Assert.All(back, v => Assert.True(float.IsNaN(v)));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(16)]
    [InlineData(1000)]
    [InlineData(16_381)]
    public void The_vectorised_paths_equal_the_one_value_conversions(int length)
    {
        var random = new Random(length);
        var values = Enumerable.Range(0, length).Select(i => i % 97 == 5 ? BitConverter.UInt32BitsToSingle((uint)random.NextInt64(0, uint.MaxValue))
            : (float)((random.NextDouble() * 2 - 1) * Math.Pow(10, random.Next(-30, 30)))).ToArray();
        var wire = new byte[length * 2];
        var back = new float[length];

        WireCodec.Encode(WireFormat.BFloat16, values, wire);
        WireCodec.Decode(WireFormat.BFloat16, wire, back);
        for (int i = 0; i < length; i++)
            Assert.Equal(BitConverter.SingleToUInt32Bits(WireCodec.FromBFloat16(WireCodec.ToBFloat16(values[i]))) | (float.IsNaN(values[i]) ? 0x0040_0000u : 0),
                BitConverter.SingleToUInt32Bits(back[i]) | (float.IsNaN(values[i]) ? 0x0040_0000u : 0));

        WireCodec.Encode(WireFormat.Float16, values, wire);
        WireCodec.Decode(WireFormat.Float16, wire, back);
        for (int i = 0; i < length; i++)
            if (!float.IsNaN(values[i])) Assert.Equal((float)(Half)values[i], back[i]);
    }

    [Fact]
    public void Adding_decoded_values_is_a_float32_addition_of_the_rounded_values()
    {
        var own = new[] { 1f, 1e-3f, -5f, 1e30f };
        var other = new[] { 1.00390625f, 3.3333333f, 5f, 1e30f };
        var wire = new byte[8];
        WireCodec.Encode(WireFormat.BFloat16, other, wire);
        var sum = (float[])own.Clone();
        WireCodec.AddDecoded(WireFormat.BFloat16, wire, sum, new float[4]);
        for (int i = 0; i < 4; i++) Assert.Equal(own[i] + WireCodec.FromBFloat16(WireCodec.ToBFloat16(other[i])), sum[i]);
    }

    [Fact]
    public void Names_are_the_job_files()
    {
        Assert.Equal(WireFormat.Float32, WireCodec.Parse("none"));
        Assert.Equal(WireFormat.BFloat16, WireCodec.Parse("bf16"));
        Assert.Equal(WireFormat.Float16, WireCodec.Parse("fp16"));
        Assert.Contains("bf16", Assert.Throws<ArgumentException>(() => WireCodec.Parse("int8")).Message);
        Assert.Equal(2, WireCodec.BytesPerValue(WireFormat.Float16));
    }
}

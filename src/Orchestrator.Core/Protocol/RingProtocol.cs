using System.Buffers;
using System.Buffers.Binary;
using System.Numerics;
using MessagePack;

namespace Orchestrator.Core.Protocol;

/// <summary>
/// The ring all-reduce's wire messages (PRODUCT.md section 4, "The data plane"). Every message
/// carries the ring's generation (messages of an older ring are dropped) and the collective's
/// number within that ring; chunks also carry a sequence number, so a lost chunk is detected,
/// never waited for in silence.
/// </summary>
public interface IRingMessage : IOrchestratorMessage
{
    int Generation { get; }
    long Collective { get; }
    int FromRank { get; }
}

/// <summary>
/// A piece of a bucket travelling to the right-hand neighbour: <see cref="Length"/> bytes of float32
/// values (little-endian) at <see cref="Offset"/> in <see cref="Payload"/>. On the TCP link the payload
/// is rented from a pool and may be longer than the data; whoever consumes the message returns it. On
/// the Akka link the payload is the whole wire frame (<see cref="Frame"/>): the serializer sends it as
/// it is and hands the received bytes back as the payload, so a chunk is copied once on its way out
/// (from the bucket into its frame) and never on its way in.
/// </summary>
public sealed record RingChunk(int Generation, long Collective, int FromRank, int Sequence, byte[] Payload, int Offset, int Length) : IRingMessage
{
    /// <summary>Generation, collective, from-rank, sequence and length, little-endian, ahead of the data.</summary>
    public const int HeaderBytes = 4 + 8 + 4 + 4 + 4;

    public RingChunk(int generation, long collective, int fromRank, int sequence, byte[] payload, int length)
        : this(generation, collective, fromRank, sequence, payload, 0, length) { }

    public ReadOnlySpan<byte> Data => Payload.AsSpan(Offset, Length);

    /// <summary>
    /// A chunk whose payload is its own wire frame: the header, then a copy of <paramref name="data"/>. A frame of a
    /// power-of-two size comes from the shared array pool (which hands out exactly that size), where received
    /// frames of that size go back once consumed.
    /// </summary>
    public static RingChunk Frame(int generation, long collective, int fromRank, int sequence, ReadOnlySpan<byte> data)
    {
        int size = HeaderBytes + data.Length;
        var frame = BitOperations.IsPow2(size) && size >= 16 ? ArrayPool<byte>.Shared.Rent(size) : new byte[size];
        data.CopyTo(frame.AsSpan(HeaderBytes));
        var chunk = new RingChunk(generation, collective, fromRank, sequence, frame, HeaderBytes, data.Length);
        chunk.WriteHeader(frame);
        return chunk;
    }

    /// <summary>The wire frame: the payload itself when it is one, else a new array.</summary>
    public byte[] ToFrame()
    {
        if ((uint)Offset > (uint)Payload.Length || (uint)Length > (uint)(Payload.Length - Offset))
            throw new ArgumentException($"ring chunk data ({Length} bytes at {Offset}) outside its payload of {Payload.Length} bytes");
        if (Offset == HeaderBytes && Payload.Length == HeaderBytes + Length)
        {
            WriteHeader(Payload);   // rewritten every time: a copy made with `with` shares the array
            return Payload;
        }
        var frame = new byte[HeaderBytes + Length];
        WriteHeader(frame);
        Data.CopyTo(frame.AsSpan(HeaderBytes));
        return frame;
    }

    /// <summary>Reads a frame; the chunk keeps <paramref name="frame"/> as its payload (no copy).</summary>
    public static RingChunk FromFrame(byte[] frame)
    {
        if (frame.Length < HeaderBytes) throw new InvalidDataException($"ring chunk frame of {frame.Length} bytes is shorter than its header");
        var h = frame.AsSpan();
        int length = BinaryPrimitives.ReadInt32LittleEndian(h[20..]);
        if (length != frame.Length - HeaderBytes)
            throw new InvalidDataException($"ring chunk frame says {length} bytes of data but carries {frame.Length - HeaderBytes}");
        return new RingChunk(BinaryPrimitives.ReadInt32LittleEndian(h), BinaryPrimitives.ReadInt64LittleEndian(h[4..]),
            BinaryPrimitives.ReadInt32LittleEndian(h[12..]), BinaryPrimitives.ReadInt32LittleEndian(h[16..]), frame, HeaderBytes, length);
    }

    private void WriteHeader(Span<byte> h)
    {
        BinaryPrimitives.WriteInt32LittleEndian(h, Generation);
        BinaryPrimitives.WriteInt64LittleEndian(h[4..], Collective);
        BinaryPrimitives.WriteInt32LittleEndian(h[12..], FromRank);
        BinaryPrimitives.WriteInt32LittleEndian(h[16..], Sequence);
        BinaryPrimitives.WriteInt32LittleEndian(h[20..], Length);
    }
}

/// <summary>Flow control, to the left-hand neighbour: "I consumed <see cref="Count"/> more of your chunks".</summary>
[MessagePackObject]
public sealed record RingCredit([property: Key(0)] int Generation, [property: Key(1)] long Collective, [property: Key(2)] int FromRank,
                                [property: Key(3)] int Count) : IRingMessage;

/// <summary>
/// The collective is abandoned. <see cref="OriginRank"/> diagnosed <see cref="Report"/> and names the
/// ranks it suspects; <see cref="Certain"/> when it has direct evidence (a neighbour that never sent
/// a chunk, never acknowledged one, or lost one) rather than a stall that may have spread from
/// elsewhere. Every rank forwards the first abort it hears from an origin around the ring.
/// </summary>
[MessagePackObject]
public sealed record RingAbort([property: Key(0)] int Generation, [property: Key(1)] long Collective, [property: Key(2)] int FromRank,
                               [property: Key(3)] int OriginRank, [property: Key(4)] string Report, [property: Key(5)] int[] SuspectRanks,
                               [property: Key(6)] bool Certain) : IRingMessage;

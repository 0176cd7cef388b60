using System.Buffers.Binary;
using System.IO.Compression;

namespace Orchestrator.Training.Data;

/// <summary>An IDX array of unsigned bytes: its dimensions and its data, row-major.</summary>
public sealed record IdxArray(int[] Dimensions, byte[] Data)
{
    public int Count => Dimensions[0];
}

/// <summary>
/// Reads IDX files (the MNIST format), gzipped or not. Strict: the data must be exactly as long as
/// the header's dimensions say, so a truncated file is never read as a shorter dataset.
/// </summary>
public static class IdxFile
{
    private const byte UnsignedByteType = 0x08;

    public static IdxArray Read(string path, int expectedDimensions)
    {
        byte[] bytes;
        try
        {
            bytes = IsGzip(path) ? Gunzip(path) : File.ReadAllBytes(path);
        }
        catch (FileNotFoundException) { throw new IdxFormatException(path, "file not found"); }
        catch (DirectoryNotFoundException) { throw new IdxFormatException(path, "file not found"); }
        catch (InvalidDataException ex) { throw new IdxFormatException(path, $"corrupt gzip stream: {ex.Message}"); }
        catch (UnauthorizedAccessException ex) { throw new IdxFormatException(path, $"cannot read: {ex.Message}"); }
        catch (IOException ex) { throw new IdxFormatException(path, $"cannot read: {ex.Message}"); }
        return Parse(bytes, path, expectedDimensions);
    }

    public static IdxArray Parse(byte[] bytes, string path, int expectedDimensions)
    {
        if (bytes.Length < 4)
            throw new IdxFormatException(path, $"not an IDX file: {bytes.Length} bytes, shorter than the 4-byte magic number");
        if (bytes[0] != 0 || bytes[1] != 0)
            throw new IdxFormatException(path, $"not an IDX file: magic number 0x{BinaryPrimitives.ReadUInt32BigEndian(bytes):x8} does not start with two zero bytes");
        if (bytes[2] != UnsignedByteType)
            throw new IdxFormatException(path, $"IDX element type 0x{bytes[2]:x2} is not supported (expected 0x08, unsigned byte)");
        int dims = bytes[3];
        if (dims != expectedDimensions)
            throw new IdxFormatException(path, $"IDX file has {dims} dimensions, expected {expectedDimensions} (magic 0x{BinaryPrimitives.ReadUInt32BigEndian(bytes):x8})");
        int headerLength = 4 + 4 * dims;
        if (bytes.Length < headerLength)
            throw new IdxFormatException(path, $"truncated: {bytes.Length} bytes, shorter than its {headerLength}-byte header");

        var shape = new int[dims];
        long expected = 1;
        for (int i = 0; i < dims; i++)
        {
            uint d = BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(4 + 4 * i));
            if (d == 0 || d > int.MaxValue) throw new IdxFormatException(path, $"dimension {i} is {d}");
            shape[i] = (int)d;
            expected = checked(expected * d);
            if (expected > Array.MaxLength) throw new IdxFormatException(path, "dimensions describe more data than can be held");
        }
        long actual = bytes.Length - headerLength;
        if (actual < expected)
            throw new IdxFormatException(path, $"truncated: header says {string.Join("x", shape)} = {expected} bytes of data, file has {actual}");
        if (actual > expected)
            throw new IdxFormatException(path, $"{actual - expected} unexpected bytes after the {string.Join("x", shape)} data");
        return new IdxArray(shape, bytes.AsSpan(headerLength).ToArray());
    }

    private static bool IsGzip(string path)
    {
        using var file = File.OpenRead(path);
        return file.ReadByte() == 0x1f && file.ReadByte() == 0x8b;
    }

    /// <summary>
    /// Decompresses at most what the file's own header describes (header plus the product of its
    /// dimensions), so a small file that inflates without end (a gzip bomb) is refused, not held in memory.
    /// </summary>
    private static byte[] Gunzip(string path)
    {
        using var file = File.OpenRead(path);
        using var gzip = new GZipStream(file, CompressionMode.Decompress);
        var magic = new byte[4];
        int got = gzip.ReadAtLeast(magic, 4, throwOnEndOfStream: false);
        if (got < 4) return magic[..got];   // Parse names what is wrong with it
        var header = new byte[4 + 4 * magic[3]];
        magic.CopyTo(header, 0);
        got = 4 + gzip.ReadAtLeast(header.AsSpan(4), header.Length - 4, throwOnEndOfStream: false);
        if (got < header.Length) return header[..got];
        long data = 1;
        for (int i = 0; i < magic[3]; i++)
        {
            data *= BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(4 + 4 * i));
            if (data > Array.MaxLength) throw new IdxFormatException(path, "dimensions describe more data than can be held");
        }
        long limit = header.Length + data;
        if (limit > Array.MaxLength) throw new IdxFormatException(path, "dimensions describe more data than can be held");
        var bytes = new byte[limit];
        header.CopyTo(bytes, 0);
        int length = header.Length + gzip.ReadAtLeast(bytes.AsSpan(header.Length), (int)data, throwOnEndOfStream: false);
        Span<byte> probe = stackalloc byte[1];
        if (gzip.Read(probe) > 0)
            throw new IdxFormatException(path, $"decompresses to more than the {limit} bytes its header describes (refused without reading further)");
        return length == bytes.Length ? bytes : bytes[..length];
    }
}

using System.Buffers.Binary;
using System.Net.Sockets;
using System.Security.Cryptography;

namespace Orchestrator.Collectives.Links;

/// <summary>
/// How a TCP ring connection proves it belongs to this job's ring generation before a byte of it is added into
/// a gradient. The job runner gives every member of a generation the same random 256-bit key (over the cluster's
/// TLS); each side proves it holds the key with an HMAC-SHA256 over both sides' fresh nonces, the generation and
/// the ranks, so a recorded handshake cannot be replayed and neither side can be impersonated:
/// <code>
/// acceptor  → connector  "ORCHRING" nonceA(32)                                  40 bytes
/// connector → acceptor   "ORCHRING" generation(4) rank(4) nonceC(32) macC(32)   80 bytes
/// acceptor  → connector  macS(32)                                               32 bytes
/// macC = HMAC(key, "connector" | generation | connector rank | acceptor rank | nonceA | nonceC)
/// macS = HMAC(key, "acceptor"  | generation | connector rank | acceptor rank | nonceA | nonceC)
/// </code>
/// Integers little-endian. Each read is bounded by <see cref="Timeout"/>, so a connection that says nothing
/// costs its own thread that long and no more.
/// </summary>
public static class RingHandshake
{
    public const int KeyBytes = 32;
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(2);
    private static readonly byte[] Magic = "ORCHRING"u8.ToArray();
    private const int NonceBytes = 32, MacBytes = 32;
    private const int ChallengeBytes = 8 + NonceBytes, HelloBytes = 8 + 4 + 4 + NonceBytes + MacBytes;

    /// <summary>A fresh key for one ring generation.</summary>
    public static byte[] NewKey() => RandomNumberGenerator.GetBytes(KeyBytes);

    /// <summary>
    /// The accepting side: challenges, checks that the peer is <paramref name="expectedRank"/> of <paramref name="generation"/>
    /// and holds the key, then proves the same. False (never an exception for a wrong peer) when it is not.
    /// </summary>
    public static bool Accept(Socket socket, byte[] key, int generation, int expectedRank, int ownRank)
    {
        socket.ReceiveTimeout = (int)Timeout.TotalMilliseconds;
        socket.SendTimeout = (int)Timeout.TotalMilliseconds;
        var nonceA = RandomNumberGenerator.GetBytes(NonceBytes);
        Send(socket, [.. Magic, .. nonceA]);
        var hello = Receive(socket, HelloBytes);
        if (!hello.AsSpan(0, 8).SequenceEqual(Magic)) return false;
        int peerGeneration = BinaryPrimitives.ReadInt32LittleEndian(hello.AsSpan(8));
        int peerRank = BinaryPrimitives.ReadInt32LittleEndian(hello.AsSpan(12));
        var nonceC = hello.AsSpan(16, NonceBytes).ToArray();
        if (peerGeneration != generation || peerRank != expectedRank) return false;
        var expected = Mac(key, "connector", generation, peerRank, ownRank, nonceA, nonceC);
        if (!CryptographicOperations.FixedTimeEquals(expected, hello.AsSpan(16 + NonceBytes, MacBytes))) return false;
        Send(socket, Mac(key, "acceptor", generation, peerRank, ownRank, nonceA, nonceC));
        socket.ReceiveTimeout = 0;
        socket.SendTimeout = 0;
        return true;
    }

    /// <summary>The connecting side: answers the challenge as <paramref name="ownRank"/>, and checks the acceptor's proof that it is <paramref name="peerRank"/>'s listener.</summary>
    public static bool Connect(Socket socket, byte[] key, int generation, int ownRank, int peerRank)
    {
        socket.ReceiveTimeout = (int)Timeout.TotalMilliseconds;
        socket.SendTimeout = (int)Timeout.TotalMilliseconds;
        var challenge = Receive(socket, ChallengeBytes);
        if (!challenge.AsSpan(0, 8).SequenceEqual(Magic)) return false;
        var nonceA = challenge.AsSpan(8, NonceBytes).ToArray();
        var nonceC = RandomNumberGenerator.GetBytes(NonceBytes);
        var hello = new byte[HelloBytes];
        Magic.CopyTo(hello, 0);
        BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(8), generation);
        BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(12), ownRank);
        nonceC.CopyTo(hello, 16);
        Mac(key, "connector", generation, ownRank, peerRank, nonceA, nonceC).CopyTo(hello, 16 + NonceBytes);
        Send(socket, hello);
        var proof = Receive(socket, MacBytes);
        if (!CryptographicOperations.FixedTimeEquals(proof, Mac(key, "acceptor", generation, ownRank, peerRank, nonceA, nonceC))) return false;
        socket.ReceiveTimeout = 0;
        socket.SendTimeout = 0;
        return true;
    }

    private static byte[] Mac(byte[] key, string role, int generation, int connectorRank, int acceptorRank, byte[] nonceA, byte[] nonceC)
    {
        var message = new byte[role.Length + 12 + 2 * NonceBytes];
        int at = System.Text.Encoding.ASCII.GetBytes(role, message);
        BinaryPrimitives.WriteInt32LittleEndian(message.AsSpan(at), generation);
        BinaryPrimitives.WriteInt32LittleEndian(message.AsSpan(at + 4), connectorRank);
        BinaryPrimitives.WriteInt32LittleEndian(message.AsSpan(at + 8), acceptorRank);
        nonceA.CopyTo(message, at + 12);
        nonceC.CopyTo(message, at + 12 + NonceBytes);
        return HMACSHA256.HashData(key, message);
    }

    private static void Send(Socket socket, ReadOnlySpan<byte> bytes)
    {
        while (bytes.Length > 0) bytes = bytes[socket.Send(bytes)..];
    }

    private static byte[] Receive(Socket socket, int count)
    {
        var buffer = new byte[count];
        for (int read = 0, n; read < count; read += n)
            if ((n = socket.Receive(buffer, read, count - read, SocketFlags.None)) == 0) throw new IOException("closed during the ring handshake");
        return buffer;
    }
}

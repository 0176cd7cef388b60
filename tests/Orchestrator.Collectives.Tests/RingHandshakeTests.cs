using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Orchestrator.Collectives.Links;

namespace Orchestrator.Collectives.Tests;

/// <summary>
/// Strangers at a TCP ring port: nothing they send is added into a gradient, and they cannot hold the ring up.
/// Two real links on 127.0.0.1; the strangers connect to rank 1's listener (where rank 0, its left neighbour,
/// connects) before rank 0 does.
/// </summary>
[Collection(RealLinks.Name)]
public sealed class RingHandshakeTests
{
    private static readonly CollectiveOptions Options = new(4096, 1024, 8, TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(300));

    [Fact]
    public async Task Forged_hellos_a_chunk_of_NaNs_garbage_and_seven_idle_sockets_are_refused_and_the_sums_stay_exact()
    {
        using var link0 = new TcpRingLink(IPAddress.Loopback);
        using var link1 = new TcpRingLink(IPAddress.Loopback);
        var key = RingHandshake.NewKey();
        var strangers = new List<Socket>();
        try
        {
            // Seven that say nothing (before, a single one held the only accept for 5 s).
            for (int i = 0; i < 7; i++) strangers.Add(Dial(link1.Port));
            // The old 25-byte hello (type 4, generation 1, rank 0) followed by a chunk header and 1,024 NaNs.
            var forged = Dial(link1.Port);
            strangers.Add(forged);
            var hello = new byte[25];
            hello[0] = 4;
            BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(1), 1);
            var chunk = new byte[25 + 4096];
            chunk[0] = 1;
            BinaryPrimitives.WriteInt32LittleEndian(chunk.AsSpan(1), 1);
            BinaryPrimitives.WriteInt32LittleEndian(chunk.AsSpan(21), 4096);
            for (int i = 0; i < 1024; i++) BinaryPrimitives.WriteSingleLittleEndian(chunk.AsSpan(25 + 4 * i), float.NaN);
            forged.Send([.. hello, .. chunk]);
            // Random bytes, an HTTP request and a TLS ClientHello cut short.
            var random = new Random(5);
            foreach (var payload in new[] { Enumerable.Range(0, 4096).Select(_ => (byte)random.Next(256)).ToArray(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray(),
                         new byte[] { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03 } })
            {
                var hostile = Dial(link1.Port);
                strangers.Add(hostile);
                hostile.Send(payload);
            }
            // One that answers the challenge as rank 0 of generation 1, with a key of its own.
            var wrongKey = Dial(link1.Port);
            strangers.Add(wrongKey);
            var impostor = Task.Run(() =>
            {
                try { return RingHandshake.Connect(wrongKey, RingHandshake.NewKey(), 1, 0, 1); }
                catch (IOException) { return false; }   // the acceptor hung up instead of proving anything
            });

            var nodes = new[] { "node-0", "node-1" };
            var rings = new[] { new RingTopology(1, 0, nodes), new RingTopology(1, 1, nodes) };
            var engines = new[] { new RingAllReduce(rings[0], link0, Options), new RingAllReduce(rings[1], link1, Options) };
            // Within 5 s, though seven idle sockets would have taken 35 s one at a time.
            await Task.WhenAll(
                Task.Run(() => link0.Connect(rings[0], $"127.0.0.1:{link1.Port}", engines[0], key, TimeSpan.FromSeconds(5), CancellationToken.None)),
                Task.Run(() => link1.Connect(rings[1], $"127.0.0.1:{link0.Port}", engines[1], key, TimeSpan.FromSeconds(5), CancellationToken.None)));
            Assert.False(await impostor.WaitAsync(TimeSpan.FromSeconds(5)));   // it never got the acceptor's proof

            var data = new[] { Enumerable.Range(0, 3000).Select(i => (float)i).ToArray(), Enumerable.Range(0, 3000).Select(i => (float)(2 * i)).ToArray() };
            var outcomes = await Task.WhenAll(LoopbackRing.RunEach(engines, data)).WaitAsync(TimeSpan.FromSeconds(30));
            Assert.All(outcomes, e => Assert.Null(e));
            for (int r = 0; r < 2; r++)
                for (int i = 0; i < 3000; i++)
                    Assert.Equal(3f * i, data[r][i]);
        }
        finally
        {
            foreach (var socket in strangers) socket.Dispose();
        }
    }

    [Fact]
    public async Task A_neighbour_with_another_key_is_refused_by_both_sides_and_the_connect_fails_naming_it()
    {
        using var link0 = new TcpRingLink(IPAddress.Loopback);
        using var link1 = new TcpRingLink(IPAddress.Loopback);
        var nodes = new[] { "node-0", "node-1" };
        var rings = new[] { new RingTopology(3, 0, nodes), new RingTopology(3, 1, nodes) };
        var engines = new[] { new RingAllReduce(rings[0], link0, Options), new RingAllReduce(rings[1], link1, Options) };
        var connects = new[]
        {
            Task.Run(() => link0.Connect(rings[0], $"127.0.0.1:{link1.Port}", engines[0], RingHandshake.NewKey(), TimeSpan.FromSeconds(4), CancellationToken.None)),
            Task.Run(() => link1.Connect(rings[1], $"127.0.0.1:{link0.Port}", engines[1], RingHandshake.NewKey(), TimeSpan.FromSeconds(4), CancellationToken.None)),
        };
        foreach (var connect in connects)
        {
            var failed = await Assert.ThrowsAsync<CollectiveFailedException>(() => connect.WaitAsync(TimeSpan.FromSeconds(20)));
            Assert.Matches("did not prove|not connected within", failed.Message);
        }
    }

    [Fact]
    public async Task The_handshake_passes_with_the_key_generation_and_ranks_and_fails_with_another_generation_or_rank()
    {
        var key = RingHandshake.NewKey();
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;

        using (var client = Dial(port))
        using (var server = listener.AcceptSocket())
        {
            var accepted = Task.Run(() => RingHandshake.Accept(server, key, generation: 5, expectedRank: 2, ownRank: 3));
            Assert.True(RingHandshake.Connect(client, key, generation: 5, ownRank: 2, peerRank: 3));
            Assert.True(await accepted);
        }
        // The right key but another generation, or another rank: refused.
        foreach (var (generation, rank) in new[] { (4, 2), (5, 1) })
        {
            using var client = Dial(port);
            using var server = listener.AcceptSocket();
            var accepted = Task.Run(() => RingHandshake.Accept(server, key, generation: 5, expectedRank: 2, ownRank: 3));
            var connecting = Task.Run(() => { try { return RingHandshake.Connect(client, key, generation, rank, 3); } catch (IOException) { return false; } });
            Assert.False(await accepted);
            server.Dispose();
            Assert.False(await connecting);
        }
    }

    private static Socket Dial(int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Connect(IPAddress.Loopback, port);
        return socket;
    }
}

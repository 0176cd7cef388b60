using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using MessagePack;
using Orchestrator.Core.Protocol;

namespace Orchestrator.Collectives.Links;

/// <summary>
/// The <c>tcp</c> transport: one TCP connection to each ring neighbour, carrying the same messages as
/// the Akka link in a fixed binary frame. Rank r connects to its right neighbour's listener (chunks go
/// out on it, credits come back) and accepts its left neighbour's connection. Each connection has a
/// writer thread that drains a queue, sending each chunk's header and pooled payload in one gathered
/// write (no copy into a stream buffer) and returning the payload, and a reader thread that reads
/// chunks straight into pooled buffers and hands everything to <see cref="RingAllReduce.Deliver"/>. A broken
/// connection delivers nothing more: the collective's deadline and sequence numbers report it.
/// </summary>
public sealed class TcpRingLink : IRingLink, IDisposable
{
    /// <summary>Chunks of this size keep the socket busy with few frames; the window bounds what is in flight.</summary>
    public const int ChunkBytes = 1024 * 1024;
    private const int HeaderBytes = 1 + 4 + 8 + 4 + 4 + 4;
    private const byte Chunk = 1, Credit = 2, Abort = 3, Hello = 4;
    private const int WriteBufferBytes = 4 * 1024 * 1024;   // socket buffers: a few chunks in flight without blocking

    private static readonly MessagePackSerializerOptions Untrusted =
        MessagePackSerializerOptions.Standard.WithSecurity(MessagePackSecurity.UntrustedData);
    private readonly TcpListener _listener;
    private Connection? _right, _left;
    private volatile bool _disposed;

    /// <summary>Listens on <paramref name="bindAddress"/> (any free port by default); <see cref="Port"/> is what to advertise.</summary>
    public TcpRingLink(IPAddress bindAddress, int port = 0)
    {
        _listener = new TcpListener(bindAddress, port);
        _listener.Start(backlog: 4);
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>
    /// Connects to the right neighbour and accepts the left one's connection, both within
    /// <paramref name="timeout"/>; each side says its rank and generation first, so a stray or stale
    /// connection is refused. Then starts delivering to <paramref name="engine"/>.
    /// </summary>
    public void Connect(RingTopology ring, string rightEndpoint, RingAllReduce engine, TimeSpan timeout, CancellationToken cancellation)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        deadline.CancelAfter(timeout);
        var accept = AcceptLeftAsync(ring, deadline.Token);
        var right = new TcpClient { NoDelay = true, SendBufferSize = WriteBufferBytes, ReceiveBufferSize = WriteBufferBytes };
        try
        {
            var (host, port) = ParseEndpoint(rightEndpoint);
            ConnectWithRetry(right, host, port, deadline.Token);
            var stream = right.GetStream();
            WriteHello(stream, ring.Generation, ring.Rank);
            _right = new Connection(right, engine, $"right neighbour {ring.Describe(ring.Right)}");
            _left = new Connection(accept.GetAwaiter().GetResult(), engine, $"left neighbour {ring.Describe(ring.Left)}");
        }
        catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
        {
            right.Dispose();
            throw new CollectiveFailedException(
                $"TCP ring link of {ring.Describe(ring.Rank)} not connected within {timeout.TotalSeconds:0} s " +
                $"(right {ring.Describe(ring.Right)} at {rightEndpoint}, left {ring.Describe(ring.Left)})", [ring.Right, ring.Left]);
        }
        _right.Start();
        _left.Start();
    }

    public void SendRight(IRingMessage message) => Send(_right, message);

    public void SendLeft(IRingMessage message) => Send(_left, message);

    private void Send(Connection? connection, IRingMessage message)
    {
        if (connection is null || _disposed || !connection.Enqueue(message))
            if (message is RingChunk chunk) RingBuffers.Return(chunk.Payload);
    }

    public void Dispose()
    {
        _disposed = true;
        _listener.Stop();
        _right?.Dispose();
        _left?.Dispose();
    }

    private async Task<TcpClient> AcceptLeftAsync(RingTopology ring, CancellationToken cancellation)
    {
        while (true)
        {
            var client = await _listener.AcceptTcpClientAsync(cancellation).ConfigureAwait(false);
            client.NoDelay = true;
            client.ReceiveBufferSize = WriteBufferBytes;
            client.SendBufferSize = WriteBufferBytes;
            try
            {
                var header = new byte[HeaderBytes];
                await client.GetStream().ReadExactlyAsync(header, cancellation).ConfigureAwait(false);
                var (type, generation, _, from, _, _) = ReadHeader(header);
                if (type == Hello && generation == ring.Generation && from == ring.Left) return client;
            }
            catch (IOException) { }
            client.Dispose();   // not our left neighbour of this generation: refuse it and keep listening
        }
    }

    private static void ConnectWithRetry(TcpClient client, string host, int port, CancellationToken cancellation)
    {
        while (true)
        {
            try
            {
                client.ConnectAsync(host, port, cancellation).AsTask().GetAwaiter().GetResult();
                return;
            }
            catch (SocketException) when (!cancellation.IsCancellationRequested)
            {
                Thread.Sleep(100);   // the neighbour's listener is open before it says it is ready; a refusal here is transient
            }
        }
    }

    private static (string Host, int Port) ParseEndpoint(string endpoint)
    {
        int colon = endpoint.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(endpoint[(colon + 1)..], out var port)) throw new ArgumentException($"bad TCP endpoint '{endpoint}'");
        return (endpoint[..colon], port);
    }

    private static void WriteHello(Stream stream, int generation, int rank)
    {
        var header = new byte[HeaderBytes];
        WriteHeader(header, Hello, generation, 0, rank, 0, 0);
        stream.Write(header);
        stream.Flush();
    }

    private static void WriteHeader(Span<byte> h, byte type, int generation, long collective, int from, int a, int length)
    {
        h[0] = type;
        BinaryPrimitives.WriteInt32LittleEndian(h[1..], generation);
        BinaryPrimitives.WriteInt64LittleEndian(h[5..], collective);
        BinaryPrimitives.WriteInt32LittleEndian(h[13..], from);
        BinaryPrimitives.WriteInt32LittleEndian(h[17..], a);
        BinaryPrimitives.WriteInt32LittleEndian(h[21..], length);
    }

    private static (byte Type, int Generation, long Collective, int From, int A, int Length) ReadHeader(ReadOnlySpan<byte> h) =>
        (h[0], BinaryPrimitives.ReadInt32LittleEndian(h[1..]), BinaryPrimitives.ReadInt64LittleEndian(h[5..]),
         BinaryPrimitives.ReadInt32LittleEndian(h[13..]), BinaryPrimitives.ReadInt32LittleEndian(h[17..]), BinaryPrimitives.ReadInt32LittleEndian(h[21..]));

    /// <summary>One socket with its writer and reader threads.</summary>
    private sealed class Connection(TcpClient client, RingAllReduce engine, string name) : IDisposable
    {
        private readonly Channel<IRingMessage> _outbox = Channel.CreateUnbounded<IRingMessage>(new UnboundedChannelOptions { SingleReader = true });
        private readonly NetworkStream _stream = client.GetStream();

        public void Start()
        {
            new Thread(WriteLoop) { IsBackground = true, Name = "ring-tx " + name }.Start();
            new Thread(ReadLoop) { IsBackground = true, Name = "ring-rx " + name }.Start();
        }

        public bool Enqueue(IRingMessage message) => _outbox.Writer.TryWrite(message);

        private void WriteLoop()
        {
            // A chunk goes out as one gathered send of its header and its pooled payload: no copy into a
            // stream buffer. Small frames (credits, aborts) are batched in a buffer and flushed before a
            // chunk and whenever the queue runs dry.
            var socket = client.Client;
            var small = new MemoryStream(4096);
            var header = new byte[HeaderBytes];
            var segments = new ArraySegment<byte>[2];
            var reader = _outbox.Reader;
            try
            {
                while (reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
                {
                    while (reader.TryRead(out var message))
                    {
                        switch (message)
                        {
                            case RingChunk c:
                                Flush(socket, small);
                                WriteHeader(header, Chunk, c.Generation, c.Collective, c.FromRank, c.Sequence, c.Length);
                                segments[0] = new ArraySegment<byte>(header);
                                segments[1] = new ArraySegment<byte>(c.Payload, 0, c.Length);
                                SendAll(socket, segments, HeaderBytes + c.Length);
                                RingBuffers.Return(c.Payload);
                                break;
                            case RingCredit c:
                                WriteHeader(header, Credit, c.Generation, c.Collective, c.FromRank, c.Count, 0);
                                small.Write(header);
                                break;
                            case RingAbort a:
                                var body = MessagePackSerializer.Serialize(a, Untrusted);
                                WriteHeader(header, Abort, a.Generation, a.Collective, a.FromRank, 0, body.Length);
                                small.Write(header);
                                small.Write(body);
                                break;
                        }
                    }
                    Flush(socket, small);
                }
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)   // IOException, ObjectDisposedException, SocketException after close, …
            {
                // The connection is gone; what is still queued is dropped and the engine's deadline reports the neighbour.
                while (reader.TryRead(out var left)) if (left is RingChunk c) RingBuffers.Return(c.Payload);
            }
        }

        private static void Flush(Socket socket, MemoryStream small)
        {
            if (small.Length == 0) return;
            var bytes = small.GetBuffer().AsSpan(0, (int)small.Length);
            while (bytes.Length > 0) bytes = bytes[socket.Send(bytes)..];
            small.SetLength(0);
        }

        /// <summary>Socket.Send of a segment list may send part of it; go on until all is out.</summary>
        private static void SendAll(Socket socket, ArraySegment<byte>[] segments, int total)
        {
            int sent = socket.Send(segments);
            while (sent < total)
            {
                int skip = sent;
                foreach (var segment in segments)
                {
                    if (skip >= segment.Count) { skip -= segment.Count; continue; }
                    var rest = segment.AsSpan(skip);
                    while (rest.Length > 0)
                    {
                        int n = socket.Send(rest);
                        rest = rest[n..];
                        sent += n;
                    }
                    skip = 0;
                }
            }
        }

        private void ReadLoop()
        {
            var header = new byte[HeaderBytes];
            try
            {
                while (true)
                {
                    _stream.ReadExactly(header);
                    var (type, generation, collective, from, a, length) = ReadHeader(header);
                    if (length < 0 || length > CollectiveOptions.MaxChunkBytes) return;   // not our protocol: stop reading
                    switch (type)
                    {
                        case Chunk:
                            var payload = RingBuffers.Rent(length);
                            _stream.ReadExactly(payload, 0, length);
                            engine.Deliver(new RingChunk(generation, collective, from, a, payload, length));
                            break;
                        case Credit:
                            engine.Deliver(new RingCredit(generation, collective, from, a));
                            break;
                        case Abort:
                            var body = new byte[length];
                            _stream.ReadExactly(body);
                            engine.Deliver(MessagePackSerializer.Deserialize<RingAbort>(body, Untrusted));
                            break;
                        default:
                            return;
                    }
                }
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)   // closed, broken, or not our protocol
            {
                // Closed or broken: nothing more comes from this neighbour.
            }
        }

        public void Dispose()
        {
            _outbox.Writer.TryComplete();
            client.Dispose();
        }
    }
}

using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using MessagePack;
using Orchestrator.Core.Protocol;

namespace Orchestrator.Collectives.Links;

/// <summary>
/// The <c>tcp</c> transport: one TCP connection to each ring neighbour, carrying the same messages as
/// the Akka link in a fixed binary frame. Rank r connects to its right neighbour's listener (chunks go
/// out on it, credits come back) and accepts its left neighbour's connection. Each connection has a
/// writer thread that drains a queue, writing each chunk straight from the caller's bucket (no copy in
/// user space), and a reader thread that reads chunks into pooled buffers and hands everything to
/// <see cref="RingAllReduce.Deliver"/>, which adds the chunk into the bucket and queues the next one on
/// that same thread. Only writer threads block on sockets, so two neighbours that both write never
/// wait for each other's readers. A broken connection delivers nothing more: the collective's deadline
/// and sequence numbers report it.
/// </summary>
public sealed class TcpRingLink : IRingLink, IDisposable
{
    /// <summary>Chunks of this size keep the socket busy with few frames; the window bounds what is in flight.</summary>
    public static int ChunkBytes => Core.Jobs.RingLinkKind.Tcp.DefaultChunkBytes;
    private const int HeaderBytes = 1 + 4 + 8 + 4 + 4 + 4;
    private const byte Chunk = 1, Credit = 2, Abort = 3;
    /// <summary>Handshakes under way at once on the listener; a connection beyond them is closed at once.</summary>
    private const int MaxPendingHandshakes = 16;
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
        _listener.Start(backlog: 64);   // room for strangers' connections beside the neighbour's
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>
    /// Connects to the right neighbour and accepts the left one's connection, both within
    /// <paramref name="timeout"/>; both prove with <see cref="RingHandshake"/> that they hold this generation's
    /// <paramref name="key"/>, so a stray, stale or forged connection is refused before it is read from.
    /// Then starts delivering to <paramref name="engine"/>.
    /// </summary>
    public void Connect(RingTopology ring, string rightEndpoint, RingAllReduce engine, byte[] key, TimeSpan timeout, CancellationToken cancellation)
    {
        if (key.Length < RingHandshake.KeyBytes) throw new ArgumentException($"the ring key must be {RingHandshake.KeyBytes} bytes", nameof(key));
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        deadline.CancelAfter(timeout);
        var accept = Task.Factory.StartNew(() => AcceptLeft(ring, key, deadline.Token), CancellationToken.None,
            TaskCreationOptions.LongRunning, TaskScheduler.Default);
        Socket? right = null;
        bool connected = false;
        try
        {
            var (host, port) = ParseEndpoint(rightEndpoint);
            right = ConnectWithRetry(host, port, deadline.Token);
            bool proven;
            using (deadline.Token.Register(right.Dispose))
            {
                try { proven = RingHandshake.Connect(right, key, ring.Generation, ring.Rank, ring.Right); }
                catch (Exception ex) when (ex is IOException or SocketException && !deadline.IsCancellationRequested) { proven = false; }
            }
            if (!proven)
                throw new CollectiveFailedException($"TCP ring link of {ring.Describe(ring.Rank)}: the listener at {rightEndpoint} did not prove it is " +
                                                    $"{ring.Describe(ring.Right)} of ring generation {ring.Generation}", [ring.Right]);
            var rightConnection = new Connection(right, engine, $"right neighbour {ring.Describe(ring.Right)}", ring.Right, fromLeft: false);
            var leftConnection = new Connection(accept.GetAwaiter().GetResult(), engine, $"left neighbour {ring.Describe(ring.Left)}", ring.Left, fromLeft: true);
            if (_disposed)   // disposed (the trainer stopped) while connecting: nothing may start
            {
                rightConnection.Dispose();
                leftConnection.Dispose();
                return;
            }
            (_right, _left) = (rightConnection, leftConnection);
            connected = true;
            rightConnection.Start();
            leftConnection.Start();
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException
                                   && deadline.IsCancellationRequested && !cancellation.IsCancellationRequested)
        {
            throw new CollectiveFailedException(
                $"TCP ring link of {ring.Describe(ring.Rank)} not connected within {timeout.TotalSeconds:0} s " +
                $"(right {ring.Describe(ring.Right)} at {rightEndpoint}, left {ring.Describe(ring.Left)})", [ring.Right, ring.Left]);
        }
        finally
        {
            if (!connected)   // nothing half-open stays behind: the right socket, and the left one should it still be accepted
            {
                right?.Dispose();
                accept.ContinueWith(t => t.Result.Dispose(), TaskContinuationOptions.OnlyOnRanToCompletion);
            }
        }
    }

    public void SendChunk(int generation, long collective, int fromRank, int sequence, ReadOnlyMemory<float> data) =>
        Send(_right, new OutgoingChunk(generation, collective, fromRank, sequence, data));

    public void SendEncoded(int generation, long collective, int fromRank, int sequence, byte[] payload, int length)
    {
        if (_right is null || _disposed) RingBuffers.Return(payload);
        else _right.Enqueue(new OutgoingEncoded(generation, collective, fromRank, sequence, payload, length));
    }

    public void SendRight(IRingMessage message) => Send(_right, Control(message));

    public void SendLeft(IRingMessage message) => Send(_left, Control(message));

    private static IRingMessage Control(IRingMessage message) => message is RingCredit or RingAbort
        ? message
        : throw new ArgumentException($"the TCP link sends chunks with {nameof(SendChunk)}, not {message.GetType().Name}");

    private void Send(Connection? connection, object message)
    {
        if (connection is null || _disposed) return;
        connection.Enqueue(message);
    }

    /// <summary>A chunk waiting for the writer: its values are still in the caller's bucket.</summary>
    private sealed record OutgoingChunk(int Generation, long Collective, int FromRank, int Sequence, ReadOnlyMemory<float> Data);

    /// <summary>A 16-bit chunk waiting for the writer, in a pooled buffer the writer returns once it is written.</summary>
    private sealed record OutgoingEncoded(int Generation, long Collective, int FromRank, int Sequence, byte[] Payload, int Length);

    public void Dispose()
    {
        _disposed = true;
        _listener.Stop();
        _right?.Dispose();
        _left?.Dispose();
    }

    // Every socket here stays in blocking mode: no asynchronous call ever touches one. On Linux, .NET runs a
    // blocking call on a socket that has seen an asynchronous operation through its epoll thread, which
    // made every read that waited cost two thread wake-ups instead of one (measured: a 64 MiB all-reduce
    // on 2 cores took about a fifth longer).
    private static Socket NewSocket() => Configure(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));

    private static Socket Configure(Socket socket)
    {
        socket.NoDelay = true;
        socket.SendBufferSize = WriteBufferBytes;
        socket.ReceiveBufferSize = WriteBufferBytes;
        return socket;
    }

    /// <summary>
    /// Accepts connections until one proves it is the left neighbour of this generation. Each handshake runs on a
    /// thread of its own with its own timeout, so connections that say nothing cannot hold the real neighbour up.
    /// </summary>
    private Socket AcceptLeft(RingTopology ring, byte[] key, CancellationToken cancellation)
    {
        var listener = _listener.Server;
        var winner = new TaskCompletionSource<Socket>(TaskCreationOptions.RunContinuationsAsynchronously);
        int pending = 0;
        try
        {
            while (!winner.Task.IsCompleted)
            {
                cancellation.ThrowIfCancellationRequested();
                if (!listener.Poll(10_000, SelectMode.SelectRead)) continue;   // 10 ms, then look at the deadline and the handshakes again
                var client = Configure(listener.Accept());
                if (Interlocked.Increment(ref pending) > MaxPendingHandshakes)
                {
                    Interlocked.Decrement(ref pending);
                    client.Dispose();
                    continue;
                }
                new Thread(() =>
                {
                    try
                    {
                        if (RingHandshake.Accept(client, key, ring.Generation, ring.Left, ring.Rank) && winner.TrySetResult(client)) return;
                    }
                    catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException) { }
                    finally { Interlocked.Decrement(ref pending); }
                    client.Dispose();   // not our left neighbour of this generation (or one too late): refuse it
                }) { IsBackground = true, Name = "ring-handshake" }.Start();
            }
            return winner.Task.Result;
        }
        finally
        {
            winner.TrySetCanceled();   // a handshake that ends after this is disposed by its own thread
        }
    }

    private static Socket ConnectWithRetry(string host, int port, CancellationToken cancellation)
    {
        while (true)
        {
            cancellation.ThrowIfCancellationRequested();
            var socket = NewSocket();
            try
            {
                using (cancellation.Register(socket.Dispose))   // the only way to bound a blocking connect
                    socket.Connect(host, port);
                return socket;
            }
            catch (SocketException) when (!cancellation.IsCancellationRequested)
            {
                socket.Dispose();
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

    /// <summary>
    /// One socket with its writer and reader threads. What the reader accepts depends on the side: from the left
    /// neighbour chunks and aborts, from the right one credits and aborts, always naming that neighbour's rank;
    /// anything else ends the connection (the collective's deadline reports it).
    /// </summary>
    private sealed class Connection(Socket socket, RingAllReduce engine, string name, int peerRank, bool fromLeft) : IDisposable
    {
        // The writer's queue: a plain monitor, pulsed only when the writer sleeps (a wake-up costs more than the enqueue).
        private readonly Queue<object> _outbox = new();
        private bool _writerWaiting, _closed;
        private readonly NetworkStream _stream = new(socket, ownsSocket: false);

        public void Start()
        {
            new Thread(WriteLoop) { IsBackground = true, Name = "ring-tx " + name }.Start();
            new Thread(ReadLoop) { IsBackground = true, Name = "ring-rx " + name }.Start();
        }

        public void Enqueue(object message)
        {
            lock (_outbox)
            {
                if (_closed) return;
                _outbox.Enqueue(message);
                if (_writerWaiting) Monitor.Pulse(_outbox);
            }
        }

        private void WriteLoop()
        {
            // Small frames (credits, aborts) and each chunk's header are batched in a buffer, which goes out
            // before the chunk's values (written straight from the bucket) and whenever the queue runs dry.
            var small = new MemoryStream(4096);
            var header = new byte[HeaderBytes];
            var batch = new List<object>();
            try
            {
                while (true)
                {
                    lock (_outbox)
                    {
                        while (_outbox.Count == 0 && !_closed)
                        {
                            _writerWaiting = true;
                            Monitor.Wait(_outbox);
                            _writerWaiting = false;
                        }
                        if (_closed) return;
                        while (_outbox.TryDequeue(out var next)) batch.Add(next);
                    }
                    foreach (var message in batch)
                    {
                        switch (message)
                        {
                            case OutgoingChunk c:
                                var values = MemoryMarshal.AsBytes(c.Data.Span);
                                WriteHeader(header, Chunk, c.Generation, c.Collective, c.FromRank, c.Sequence, values.Length);
                                small.Write(header);
                                Flush(socket, small);
                                SendAll(socket, values);
                                break;
                            case OutgoingEncoded e:
                                WriteHeader(header, Chunk, e.Generation, e.Collective, e.FromRank, e.Sequence, e.Length);
                                small.Write(header);
                                Flush(socket, small);
                                SendAll(socket, e.Payload.AsSpan(0, e.Length));
                                RingBuffers.Return(e.Payload);
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
                    batch.Clear();
                    Flush(socket, small);
                }
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)   // IOException, ObjectDisposedException, SocketException after close, …
            {
                // The connection is gone; what is still queued is dropped and the engine's deadline reports the neighbour.
                lock (_outbox)
                {
                    _closed = true;
                    _outbox.Clear();
                }
            }
        }

        private static void Flush(Socket socket, MemoryStream small)
        {
            if (small.Length == 0) return;
            SendAll(socket, small.GetBuffer().AsSpan(0, (int)small.Length));
            small.SetLength(0);
        }

        private static void SendAll(Socket socket, ReadOnlySpan<byte> bytes)
        {
            while (bytes.Length > 0) bytes = bytes[socket.Send(bytes)..];
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
                    if (length < 0 || length > CollectiveOptions.MaxChunkBytes || from != peerRank) return;   // not our protocol: stop reading
                    if (type == (fromLeft ? Credit : Chunk)) return;   // the wrong direction for this neighbour
                    switch (type)
                    {
                        case Chunk:
                            // An all-gather chunk is read straight into the bucket; a sum goes through a pooled buffer.
                            var zone = engine.LandingZone(generation, collective, a, length);
                            if (!zone.IsEmpty)
                            {
                                _stream.ReadExactly(MemoryMarshal.AsBytes(zone.Span));
                                engine.Landed(generation, collective, a);
                                break;
                            }
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
                            var abort = MessagePackSerializer.Deserialize<RingAbort>(body, Untrusted);
                            Core.Serialization.CompleteMessages.Check(abort);   // no nulls where the engine reads
                            engine.Deliver(abort);
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
            lock (_outbox)
            {
                _closed = true;
                Monitor.PulseAll(_outbox);
            }
            socket.Dispose();
        }
    }
}

using Akka.Actor;
using Akka.Event;
using static Orchestrator.Core.Protocol.PackageProtocol;

namespace Orchestrator.Cluster.Packages;

/// <summary>
/// Serves the coordinator's packages to the nodes that run them (<c>/user/package-store</c>), one chunk
/// per request. Requests are checked (a SHA-256 name, an offset within the file, a length of at most one
/// chunk) and files are read off the mailbox.
/// </summary>
public sealed class PackageServer : ReceiveActor
{
    public const string Name = "package-store";

    public static Props Props(PackageStore store) => Akka.Actor.Props.Create(() => new PackageServer(store));

    public PackageServer(PackageStore store)
    {
        Receive<FetchPackageChunk>(request =>
        {
            var replyTo = Sender;
            if (!Membership.Senders.FromRole(Context.System, replyTo, "worker"))
            {
                replyTo.Tell(new PackageUnavailable(request.Sha256, "packages are sent to members with the worker role only"));
                return;
            }
            if (!PackageStore.IsHash(request.Sha256) || request.Offset < 0 || request.Length is <= 0 or > ChunkBytes)
            {
                replyTo.Tell(new PackageUnavailable(request.Sha256 ?? "", $"bad request: offset {request.Offset}, length {request.Length}"));
                return;
            }
            Task.Run(() => Read(store, request)).PipeTo(replyTo,
                failure: ex => new PackageUnavailable(request.Sha256, $"cannot read it on the coordinator: {ex.Message}"));
        });
    }

    private static object Read(PackageStore store, FetchPackageChunk request)
    {
        if (!store.Has(request.Sha256)) return new PackageUnavailable(request.Sha256, "the coordinator has no such package (never uploaded, or removed by retention)");
        using var file = File.OpenRead(store.PathOf(request.Sha256));
        if (request.Offset > file.Length || (request.Offset == file.Length && file.Length > 0))
            return new PackageUnavailable(request.Sha256, $"offset {request.Offset} is past the package's {file.Length} bytes");
        file.Seek(request.Offset, SeekOrigin.Begin);
        var data = new byte[(int)Math.Min(request.Length, file.Length - request.Offset)];
        file.ReadExactly(data);
        return new PackageChunk(request.Sha256, request.Offset, file.Length, data);
    }
}

/// <summary>
/// Fetches one package from a <see cref="PackageServer"/> into this node's <see cref="Training.Workloads.PackageCache"/>:
/// chunk requests with a bounded number outstanding, every answer checked against what was asked, the
/// whole verified against its SHA-256 before it is unpacked. Tells its parent <see cref="Fetched"/> or
/// <see cref="FetchFailed"/>, then stops.
/// </summary>
public sealed class PackageFetcher : ReceiveActor
{
    private const int Window = 8;
    private static readonly TimeSpan Silence = TimeSpan.FromSeconds(30);

    public sealed record Fetched(string Sha256, string Folder);
    public sealed record FetchFailed(string Sha256, string Reason);
    private sealed record Installed(string Folder);

    private readonly IActorRef _server;
    private readonly string _sha;
    private readonly Training.Workloads.PackageCache _cache;
    private readonly long _maxBytes;
    private readonly HashSet<long> _asked = [];
    private byte[]? _bytes;
    private long _next, _received;

    public static Props Props(IActorRef server, string sha256, Training.Workloads.PackageCache cache, long maxBytes) =>
        Akka.Actor.Props.Create(() => new PackageFetcher(server, sha256, cache, maxBytes));

    public PackageFetcher(IActorRef server, string sha256, Training.Workloads.PackageCache cache, long maxBytes)
    {
        _server = server;
        _sha = sha256;
        _cache = cache;
        _maxBytes = maxBytes;
        Receive<PackageChunk>(OnChunk);
        Receive<PackageUnavailable>(u => { if (u.Sha256 == _sha) Fail($"the coordinator cannot send package sha256:{_sha}: {u.Reason}"); });
        Receive<Installed>(i => Finish(new Fetched(_sha, i.Folder)));
        Receive<Status.Failure>(f => Fail(f.Cause.Message));
        Receive<ReceiveTimeout>(_ => Fail($"no answer from {_server.Path.Address} for {Silence.TotalSeconds:0} s while fetching package sha256:{_sha}"));
    }

    protected override void PreStart()
    {
        Context.SetReceiveTimeout(Silence);
        Ask(0);
    }

    private void Ask(long offset)
    {
        _asked.Add(offset);
        _server.Tell(new FetchPackageChunk(_sha, offset, PackageProtocolChunk(offset)));
    }

    private int PackageProtocolChunk(long offset) =>
        _bytes is null ? Core.Protocol.PackageProtocol.ChunkBytes : (int)Math.Min(Core.Protocol.PackageProtocol.ChunkBytes, _bytes.LongLength - offset);

    private void OnChunk(PackageChunk chunk)
    {
        if (chunk.Sha256 != _sha || !_asked.Remove(chunk.Offset)) return;   // not asked for (or twice): ignored
        if (_bytes is null)
        {
            if (chunk.TotalLength < 0 || chunk.TotalLength > _maxBytes)
            {
                Fail($"package sha256:{_sha} claims {chunk.TotalLength} bytes, over the limit of {_maxBytes}");
                return;
            }
            _bytes = new byte[chunk.TotalLength];
            _next = 0;
        }
        if (chunk.TotalLength != _bytes.LongLength || chunk.Data.LongLength != Math.Min(Core.Protocol.PackageProtocol.ChunkBytes, _bytes.LongLength - chunk.Offset))
        {
            Fail($"package sha256:{_sha}: a chunk at offset {chunk.Offset} does not fit ({chunk.Data.Length} of {chunk.TotalLength} bytes)");
            return;
        }
        chunk.Data.CopyTo(_bytes, chunk.Offset);
        _received += chunk.Data.LongLength;
        if (_next == 0) _next = chunk.Data.LongLength;   // the first answer told the length: ask for the rest, a window at a time
        while (_asked.Count < Window && _next < _bytes.LongLength)
        {
            Ask(_next);
            _next += PackageProtocolChunk(_next);
        }
        if (_received < _bytes.LongLength) return;
        Context.SetReceiveTimeout(null);
        var (bytes, cache, sha) = (_bytes, _cache, _sha);
        Task.Run(() => new Installed(cache.Install(sha, bytes))).PipeTo(Self);
    }

    private void Fail(string reason) => Finish(new FetchFailed(_sha, reason));

    private void Finish(object result)
    {
        if (result is FetchFailed failed) Context.GetLogger().Warning("{0}", failed.Reason);
        Context.Parent.Tell(result);
        Context.Stop(Self);
    }
}

using System.Runtime.Serialization;
using Akka.Actor;
using Akka.Serialization;

namespace Orchestrator.Core.Serialization;

/// <summary>
/// Stands in for a serializer Akka registers by default whose decoding we never allow: a message arriving
/// with its identifier is refused (a <see cref="SerializationException"/>, which the remoting layer logs and
/// drops) before a byte of it is read, and nothing of ours is ever encoded with it. Registered in
/// reference.conf under the same names, so Akka's own classes are never instantiated.
/// </summary>
public abstract class RefusedSerializer(ExtendedActorSystem system, string what) : Serializer(system)
{
    public override bool IncludeManifest => false;

    public override byte[] ToBinary(object obj) =>
        throw new SerializationException($"{obj.GetType()} has no serializer: {what} is switched off (bind the type to the orchestrator serializer)");

    public override object FromBinary(byte[] bytes, Type type) =>
        throw new SerializationException($"refused {bytes.Length} bytes from the network: {what} is switched off");
}

/// <summary>Akka's Newtonsoft JSON serializer (identifier 1), which resolves type names from the payload.</summary>
public sealed class NoJsonSerializer(ExtendedActorSystem system) : RefusedSerializer(system, "type-name JSON decoding (serializer 1)")
{
    /// <summary>Akka passes <c>akka.actor.serialization-settings.json</c> where it is present; it is ignored.</summary>
    public NoJsonSerializer(ExtendedActorSystem system, Akka.Configuration.Config settings) : this(system) { }

    public override int Identifier => 1;
}

/// <summary>Akka Remote's remote-deployment serializer (identifier 3): props with type names and constructor arguments.</summary>
public sealed class NoRemoteDeploymentSerializer(ExtendedActorSystem system) : RefusedSerializer(system, "remote deployment (serializer 3)")
{
    public NoRemoteDeploymentSerializer(ExtendedActorSystem system, Akka.Configuration.Config settings) : this(system) { }

    public override int Identifier => 3;
}

/// <summary>
/// Akka Remote's miscellaneous serializer (identifier 16), keeping only what a cluster of ours receives:
/// Identify and its answer (singleton proxies), actor references, remote-watcher heartbeats, PoisonPill and Kill
/// (which untrusted mode then drops) and Status.Success. Refused unread: Status.Failure, whose exception Akka
/// rebuilds from a type name in the payload by calling that type's serialization constructor, and the scopes,
/// routers and configuration that only remote deployment sends.
/// </summary>
public sealed class GuardedMiscSerializer : SerializerWithStringManifest
{
    private static readonly HashSet<string> Accepted = ["ID", "AID", "AR", "PP", "K", "IR", "RWHB", "RWHR", "STS"];
    private readonly Akka.Remote.Serialization.MiscMessageSerializer _inner;

    public GuardedMiscSerializer(ExtendedActorSystem system) : base(system) => _inner = new Akka.Remote.Serialization.MiscMessageSerializer(system);

    public override int Identifier => 16;

    public override byte[] ToBinary(object obj) => _inner.ToBinary(obj);

    public override string Manifest(object o) => _inner.Manifest(o);

    public override object FromBinary(byte[] bytes, string manifest) =>
        Accepted.Contains(manifest)
            ? _inner.FromBinary(bytes, manifest)
            : throw new SerializationException($"refused {bytes.Length} bytes from the network: Akka message [{manifest}] (serializer 16) is not accepted here");
}

/// <summary>
/// Akka Remote's system-message serializer (identifier 22), keeping only remote death watch (Watch, Unwatch,
/// DeathWatchNotification). The others (Create, Recreate, Supervise, Failed, …) concern children deployed from
/// another node, which untrusted mode forbids, and some carry exceptions rebuilt from type names.
/// </summary>
public sealed class GuardedSystemMessageSerializer(ExtendedActorSystem system) : Serializer(system)
{
    private readonly Akka.Remote.Serialization.SystemMessageSerializer _inner = new(system);

    public override int Identifier => 22;

    public override bool IncludeManifest => true;

    public override byte[] ToBinary(object obj) => _inner.ToBinary(obj);

    public override object FromBinary(byte[] bytes, Type type) =>
        type == typeof(Akka.Dispatch.SysMsg.Watch) || type == typeof(Akka.Dispatch.SysMsg.Unwatch) || type == typeof(Akka.Dispatch.SysMsg.DeathWatchNotification)
            ? _inner.FromBinary(bytes, type)
            : throw new SerializationException($"refused {bytes.Length} bytes from the network: system message {type?.Name} (serializer 22) is not accepted here");
}

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

using Akka.Actor;
using Orchestrator.Core.Protocol;

namespace Orchestrator.Collectives.Links;

/// <summary>
/// The receiving end of the <see cref="AkkaRingLink"/> where nothing else needs the messages (the benchmark,
/// the link tests): every ring message goes to the engine in <see cref="Target"/>, which is set before the
/// first chunk can arrive. The cluster's trainer receives them itself, because it must hold back those
/// that come before its ring exists.
/// </summary>
public sealed class RingEndpoint : ReceiveActor
{
    public sealed class Target
    {
        public volatile RingAllReduce? Engine;
    }

    public static Props Props(Target target) => Akka.Actor.Props.Create(() => new RingEndpoint(target));

    public RingEndpoint(Target target) => Receive<IRingMessage>(m => target.Engine!.Deliver(m));
}

using Akka.Actor;
using Akka.Cluster;
using Orchestrator.Core.Protocol;

namespace Orchestrator.Cluster.Membership;

/// <summary>
/// Who may send what, as pure checks over the membership and the sender's address. Every node holds a
/// certificate from the cluster's CA (TLS decides who connects at all); these checks stop what a connected
/// node has no business sending: a node that is not (or no longer) a member, or has not the role the
/// message needs, or a worker of another ring. The sender is the address an Akka envelope names, which the
/// sending node chooses; the checks catch stale, confused and non-member senders, not a node that forges
/// envelopes (that takes a stolen certificate, which TLS cannot tell from its owner).
/// </summary>
public static class Senders
{
    /// <summary>
    /// An actor of this node (the job API, a child), which needs no membership. A message from another node
    /// that names no sender arrives from this node's dead letters: that is not local.
    /// </summary>
    public static bool IsLocal(IActorRef sender) => !sender.IsNobody() && sender.Path.Address.HasLocalScope;

    /// <summary>The node a sender is on: this node's own address for a local actor (which has no host in its path).</summary>
    public static Address NodeOf(ActorSystem system, IActorRef sender) =>
        IsLocal(sender) ? Akka.Cluster.Cluster.Get(system).SelfAddress : sender.Path.Address;

    /// <summary>The ring's peer addresses, parsed once per ring (null where one does not parse).</summary>
    public static Address?[] ParsePeers(IReadOnlyList<string> peers) => peers.Select(ParseNode).ToArray();

    /// <summary>A member that is up (or leaving) and has the role.</summary>
    public static bool IsMemberWithRole(IEnumerable<Member> members, Address address, string role) =>
        members.Any(m => m.Address.Equals(address) && m.HasRole(role)
                         && m.Status is MemberStatus.Up or MemberStatus.WeaklyUp or MemberStatus.Leaving or MemberStatus.Exiting);

    /// <summary>The sender is local or a member with the role in this node's current view of the cluster.</summary>
    public static bool FromRole(ActorSystem system, IActorRef sender, string role) =>
        IsLocal(sender) || IsMemberWithRole(Akka.Cluster.Cluster.Get(system).State.Members, sender.Path.Address, role);

    /// <summary>A node address as the protocol carries it (<c>akka.ssl.tcp://orchestrator@host:port</c>), or null when it does not parse.</summary>
    public static Address? ParseNode(string? node)
    {
        if (string.IsNullOrEmpty(node)) return null;
        try { return Address.Parse(node); }
        catch (UriFormatException) { return null; }
        catch (ArgumentException) { return null; }
    }

    /// <summary>
    /// A ring message comes from the node of the rank it names, in the peer list of this ring (the engine then
    /// checks that the rank is the neighbour that may send it).
    /// </summary>
    public static bool IsFromRank(IRingMessage message, Address sender, IReadOnlyList<string> peers) => IsFromRank(message, sender, ParsePeers(peers));

    /// <summary>As above, with the peers already parsed (the trainer's hot path: no parsing per message).</summary>
    public static bool IsFromRank(IRingMessage message, Address sender, IReadOnlyList<Address?> peers)
    {
        int rank = message switch
        {
            RingChunk c => c.FromRank,
            RingCredit c => c.FromRank,
            RingAbort a => a.FromRank,
            _ => -1,
        };
        return rank >= 0 && rank < peers.Count && peers[rank] is { } expected && expected.Equals(sender);
    }
}

using Akka.Actor;
using Orchestrator.Collectives.Links;
using Orchestrator.Core.Jobs;

namespace Orchestrator.Collectives.Tests;

public class RingLinksTests
{
    [Fact]
    public void Every_link_the_job_file_may_name_has_an_entry_and_no_other()
    {
        Assert.Equal(RingLinkKind.All.Select(k => k.Name).Order(), RingLinks.Names.Order());
        Assert.Contains("known: akka, tcp", Assert.Throws<ArgumentException>(() => RingLinks.Open("udp", new RingLinkHost("127.0.0.1", _ => ActorRefs.Nobody, ActorRefs.Nobody))).Message);
    }

    [Fact]
    public void The_tcp_end_listens_from_the_start_and_advertises_its_port_the_akka_end_needs_nothing()
    {
        var host = new RingLinkHost("127.0.0.1", _ => ActorRefs.Nobody, ActorRefs.Nobody);
        using (var tcp = RingLinks.Open("tcp", host))
        {
            Assert.Matches(@"^127\.0\.0\.1:\d+$", tcp.Endpoint);
            using var probe = new System.Net.Sockets.TcpClient();
            probe.Connect("127.0.0.1", int.Parse(tcp.Endpoint.Split(':')[1]));   // the listener is open before the ring forms
            var ring = new RingTopology(1, 0, ["a", "b"]);
            Assert.IsType<TcpRingLink>(tcp.Link(ring));
        }
        using var akka = RingLinks.Open("akka", host);
        Assert.Equal("", akka.Endpoint);
        Assert.IsType<AkkaRingLink>(akka.Link(new RingTopology(1, 0, ["a", "b"])));
    }
}

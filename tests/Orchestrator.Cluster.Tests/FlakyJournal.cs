using System.Collections.Immutable;
using Akka.Persistence;
using Akka.Persistence.Journal;

namespace Orchestrator.Cluster.Tests;

/// <summary>An in-memory journal whose writes fail while <see cref="Failing"/> is set, as a full disk would make them.</summary>
public sealed class FlakyJournal : MemoryJournal
{
    /// <summary>A one-node cluster system on this journal (add a snapshot folder and anything else per spec).</summary>
    public const string SystemConfig = """
        akka.actor.provider = cluster
        akka.remote.dot-netty.tcp.port = 0
        akka.remote.dot-netty.tcp.hostname = 127.0.0.1
        akka.coordinated-shutdown.exit-clr = off
        akka.coordinated-shutdown.run-by-clr-shutdown-hook = off
        akka.persistence.journal.plugin = "akka.persistence.journal.flaky"
        akka.persistence.journal.flaky.class = "Orchestrator.Cluster.Tests.FlakyJournal, Orchestrator.Cluster.Tests"
        akka.persistence.journal.flaky.plugin-dispatcher = "akka.actor.default-dispatcher"
        akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.local"
        """;

    public static volatile bool Failing;

    protected override Task<IImmutableList<Exception>> WriteMessagesAsync(IEnumerable<AtomicWrite> messages, CancellationToken cancellationToken) =>
        Failing ? Task.FromException<IImmutableList<Exception>>(new IOException("No space left on device"))
                : base.WriteMessagesAsync(messages, cancellationToken);
}

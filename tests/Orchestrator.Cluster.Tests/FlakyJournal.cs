using System.Collections.Immutable;
using Akka.Persistence;
using Akka.Persistence.Journal;

namespace Orchestrator.Cluster.Tests;

/// <summary>An in-memory journal whose writes fail while <see cref="Failing"/> is set, as a full disk would make them.</summary>
public sealed class FlakyJournal : MemoryJournal
{
    public static volatile bool Failing;

    protected override Task<IImmutableList<Exception>> WriteMessagesAsync(IEnumerable<AtomicWrite> messages, CancellationToken cancellationToken) =>
        Failing ? Task.FromException<IImmutableList<Exception>>(new IOException("No space left on device"))
                : base.WriteMessagesAsync(messages, cancellationToken);
}

using System.Security.Cryptography.X509Certificates;
using Akka.Event;
using Akka.Remote.Transport.DotNetty;

namespace Orchestrator.Core.Security;

/// <summary>
/// Akka Remote's TLS for a cluster node: its certificate for both directions, mutual authentication, and
/// <see cref="ClusterTrust"/> in place of the operating system's store. Used by the node host and the bench.
/// </summary>
public static class RemoteTls
{
    public static DotNettySslSetup Setup(X509Certificate2 certificate, ClusterTrust trust) =>
        new(certificate, suppressValidation: false, requireMutualAuthentication: true, validateCertificateHostname: false,
            customValidator: (peer, _, remote, errors, log) =>
            {
                // Akka hands the outbound side the address it dialled (akka.ssl.tcp://…) and the inbound side the
                // peer's socket address (which names no host): the name is checked where one was dialled.
                bool dialled = remote.Contains("://", StringComparison.Ordinal);
                if (trust.VerifyTls(peer, errors, checkName: dialled, ClusterTrust.ServerAuthOid, out var reason)) return true;
                log.Warning("refused a TLS connection {0} {1}: {2}", dialled ? "to" : "from", remote, reason);
                return false;
            });
}

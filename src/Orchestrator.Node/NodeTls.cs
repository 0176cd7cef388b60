using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Akka.Configuration;
using Akka.Remote.Transport.DotNetty;
using Orchestrator.Core.Security;

namespace Orchestrator.Node;

/// <summary>
/// A node's TLS identity: its certificate (with key) and the cluster CA every peer must chain to. Akka Remote
/// runs over TLS with mutual authentication: both sides present a node certificate and check the other's with
/// <see cref="ClusterTrust"/> (the side that dialled also checks the host name), so only holders of a node
/// certificate from this cluster's CA can connect at all.
/// </summary>
public sealed record NodeTls(string Folder, X509Certificate2 Certificate, ClusterTrust Trust)
{
    public const string ConfigPath = "orchestrator.tls.dir";

    /// <summary>
    /// The identity from <c>--certs</c> or <c>orchestrator.tls.dir</c>; null for <c>--insecure</c>, which is refused
    /// unless both the remoting and the API host are loopback. No certificates and no <c>--insecure</c> is refused too.
    /// </summary>
    public static NodeTls? Resolve(NodeOptions options, Config config, string hostname, string apiHostname)
    {
        var folder = options.CertsDir ?? config.GetString(ConfigPath, "");
        if (options.Insecure)
        {
            if (!string.IsNullOrEmpty(folder)) throw new NodeUsageException($"--insecure: this node has certificates ({folder}); drop one of the two");
            foreach (var (name, host) in new[] { ("--hostname", hostname), ("orchestrator.api.hostname", apiHostname) })
                if (!CertificateFolder.IsLoopback(host))
                    throw new NodeUsageException($"--insecure is for development on loopback only, and {name} is {host}; " + HowToMake(hostname));
            return null;
        }
        if (string.IsNullOrEmpty(folder))
            throw new NodeUsageException("no certificates: nodes talk over mutually authenticated TLS. " + HowToMake(hostname) +
                                         " (or --insecure, for development on loopback only)");
        try
        {
            var (certificate, trust) = CertificateFolder.LoadIdentity(Path.GetFullPath(folder), CertificateFolder.NodeCertificate, CertificateFolder.NodeKey);
            return new NodeTls(Path.GetFullPath(folder), certificate, trust);
        }
        catch (Exception ex) when (ex is IOException or CryptographicException or UnauthorizedAccessException)
        {
            throw new NodeUsageException($"--certs {folder}: {ex.Message}");
        }
    }

    private static string HowToMake(string hostname) =>
        $"Make certificates with `orchestrator-node init --dir <folder> --hosts {hostname}` and start the node with --certs <folder>/nodes/{hostname}";

    /// <summary>Akka's TLS setup: our certificate for both directions, mutual authentication, and the pinned check in place of the OS store's.</summary>
    public DotNettySslSetup AkkaSetup() => RemoteTls.Setup(Certificate, Trust);
}

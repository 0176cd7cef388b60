using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Orchestrator.Core.Security;

namespace Orchestrator.Core.Tests;

public sealed class ClusterTrustTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "trust-" + Guid.NewGuid().ToString("N"));
    private static readonly CertificateAuthority Ca = CertificateAuthority.Create("test CA");
    private static readonly CertificateAuthority OtherCa = CertificateAuthority.Create("test CA");   // same name, other key
    private readonly ClusterTrust _trust = new(Ca.Certificate);

    [Fact]
    public void A_node_certificate_from_the_cluster_CA_is_trusted_for_both_directions()
    {
        using var node = Ca.IssueNode(["10.0.0.2", "worker-2"]);
        Assert.True(_trust.Verify(node, ClusterTrust.ServerAuthOid, DateTime.Now, out var reason), reason);
        Assert.True(_trust.Verify(node, ClusterTrust.ClientAuthOid, DateTime.Now, out reason), reason);
        var names = node.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single();
        Assert.Equal(["worker-2"], names.EnumerateDnsNames());
        Assert.Equal(["10.0.0.2"], names.EnumerateIPAddresses().Select(ip => ip.ToString()));
    }

    [Fact]
    public void Certificates_the_cluster_CA_did_not_issue_for_a_node_are_refused_each_with_its_reason()
    {
        using var other = OtherCa.IssueNode(["127.0.0.1"]);
        using var selfSignedKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var selfSigned = new CertificateRequest("CN=127.0.0.1, OU=node", selfSignedKey, HashAlgorithmName.SHA256)
            .CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        using var expired = Ca.IssueNode(["127.0.0.1"], DateTimeOffset.UtcNow.AddDays(-30), DateTimeOffset.UtcNow.AddDays(-1));
        using var notYet = Ca.IssueNode(["127.0.0.1"], DateTimeOffset.UtcNow.AddDays(1), DateTimeOffset.UtcNow.AddDays(30));
        using var client = Ca.IssueClient("a client");

        foreach (var (cert, expected) in new (X509Certificate2?, string)[]
                 {
                     (other, "not trusted by the cluster CA"),
                     (selfSigned, "not trusted by the cluster CA"),
                     (expired, "not trusted by the cluster CA"),
                     (notYet, "not trusted by the cluster CA"),
                     (client, "not trusted by the cluster CA"),          // client authentication only: not a node
                     (Ca.Certificate, "the CA's own certificate"),
                     (null, "no certificate"),
                 })
        {
            Assert.False(_trust.Verify(cert, ClusterTrust.ServerAuthOid, DateTime.Now, out var reason), cert?.Subject);
            Assert.Contains(expected, reason);
        }
        Assert.True(_trust.Verify(client, ClusterTrust.ClientAuthOid, DateTime.Now, out var clientReason), clientReason);
        // The other CA's certificate under this cluster's CA name does not pass for it either.
        Assert.False(_trust.Verify(OtherCa.Certificate, ClusterTrust.ServerAuthOid, DateTime.Now, out _));
    }

    [Fact]
    public void Init_writes_private_keys_mode_0600_and_a_second_run_keeps_the_CA_and_adds_only_new_hosts()
    {
        var first = CertificateFolder.Init(_dir, ["127.0.0.1"]);
        Assert.True(first.CaCreated);
        var ca = File.ReadAllText(Path.Combine(_dir, "ca.crt"));
        var node = File.ReadAllText(Path.Combine(_dir, "nodes", "127.0.0.1", "node.crt"));
        if (!OperatingSystem.IsWindows())
        {
            foreach (var key in new[] { "ca.key", "nodes/127.0.0.1/node.key", "client/client.key" })
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_dir, key)));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(_dir));
        }

        var second = CertificateFolder.Init(_dir, ["127.0.0.1", "10.0.0.3"]);
        Assert.False(second.CaCreated);
        Assert.Equal([Path.Combine(_dir, "nodes", "10.0.0.3")], second.CreatedFolders);
        Assert.Equal(ca, File.ReadAllText(Path.Combine(_dir, "ca.crt")));
        Assert.Equal(node, File.ReadAllText(Path.Combine(_dir, "nodes", "127.0.0.1", "node.crt")));

        var (cert, trust) = CertificateFolder.LoadIdentity(Path.Combine(_dir, "nodes", "10.0.0.3"), CertificateFolder.NodeCertificate, CertificateFolder.NodeKey);
        Assert.True(cert.HasPrivateKey);
        Assert.Equal(ca.Trim(), trust.Ca.ExportCertificatePem().Trim());
        // A node folder holds no CA key: a worker never needs it.
        Assert.False(File.Exists(Path.Combine(_dir, "nodes", "10.0.0.3", "ca.key")));
    }

    [Fact]
    public void A_node_folder_whose_certificate_another_CA_issued_is_refused_when_loaded()
    {
        CertificateFolder.Init(_dir, ["127.0.0.1"]);
        var folder = Path.Combine(_dir, "nodes", "127.0.0.1");
        using var other = OtherCa.IssueNode(["127.0.0.1"]);
        File.WriteAllText(Path.Combine(folder, "node.crt"), other.ExportCertificatePem());
        File.WriteAllText(Path.Combine(folder, "node.key"), other.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
        var error = Assert.Throws<CryptographicException>(() => CertificateFolder.LoadIdentity(folder, CertificateFolder.NodeCertificate, CertificateFolder.NodeKey));
        Assert.Contains("not trusted by the cluster CA", error.Message);
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (DirectoryNotFoundException) { }
    }
}

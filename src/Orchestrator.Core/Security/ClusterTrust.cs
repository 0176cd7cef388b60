using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Orchestrator.Core.Security;

/// <summary>
/// Trust pinned to one cluster's CA: a peer's certificate is accepted only when it chains to exactly
/// that CA (the operating system's store plays no part), is within its validity dates, and carries the
/// extended key usage its side needs (node certificates: server and client authentication, so that a
/// client certificate cannot join the cluster as a node). Used by Akka Remote on both sides of every
/// connection, by the job API and by the console client.
/// </summary>
public sealed class ClusterTrust
{
    public const string ServerAuthOid = "1.3.6.1.5.5.7.3.1";
    public const string ClientAuthOid = "1.3.6.1.5.5.7.3.2";

    private readonly X509Certificate2 _ca;

    public ClusterTrust(X509Certificate2 ca)
    {
        if (!IsCertificateAuthority(ca)) throw new ArgumentException($"{ca.Subject} is not a certificate authority (no CA basic constraint)", nameof(ca));
        _ca = ca;
    }

    public X509Certificate2 Ca => _ca;

    /// <summary>The CA from a PEM file (<c>ca.crt</c> as written by <c>orchestrator-node init</c>).</summary>
    public static ClusterTrust Load(string caPath)
    {
        if (!File.Exists(caPath)) throw new FileNotFoundException($"{caPath}: the cluster CA certificate is missing", caPath);
        X509Certificate2 ca;
        try { ca = X509Certificate2.CreateFromPem(File.ReadAllText(caPath)); }
        catch (CryptographicException ex) { throw new CryptographicException($"{caPath}: not a PEM certificate ({ex.Message})", ex); }
        return new ClusterTrust(ca);
    }

    /// <summary>
    /// Whether <paramref name="peer"/> chains to this cluster's CA and may be used for <paramref name="usageOid"/>
    /// at <paramref name="now"/>; <paramref name="reason"/> says why not.
    /// </summary>
    public bool Verify(X509Certificate2? peer, string usageOid, DateTime now, out string reason)
    {
        if (peer is null) { reason = "no certificate was presented"; return false; }
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(_ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;   // a private CA publishes no revocation lists
        chain.ChainPolicy.DisableCertificateDownloads = true;
        chain.ChainPolicy.VerificationTime = now;
        chain.ChainPolicy.VerificationTimeIgnored = false;
        chain.ChainPolicy.ApplicationPolicy.Add(new Oid(usageOid));
        if (!chain.Build(peer))
        {
            var problems = chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Where(s => s.Length > 0).Distinct();
            reason = $"certificate '{peer.Subject}' is not trusted by the cluster CA: {string.Join("; ", problems)}";
            return false;
        }
        var root = chain.ChainElements[^1].Certificate;
        if (!root.RawDataMemory.Span.SequenceEqual(_ca.RawDataMemory.Span))
        {
            reason = $"certificate '{peer.Subject}' chains to '{root.Subject}', not to the cluster CA";
            return false;
        }
        if (peer.RawDataMemory.Span.SequenceEqual(_ca.RawDataMemory.Span))
        {
            reason = "the CA's own certificate is not a node's";
            return false;
        }
        reason = "";
        return true;
    }

    /// <summary>
    /// The check for one side of a TLS connection: the chain as above, and on the side that connected (the
    /// client) a host-name match, which <see cref="SslStream"/> reports as a policy error against the name it dialled.
    /// </summary>
    public bool VerifyTls(X509Certificate2? peer, SslPolicyErrors errors, bool checkName, string usageOid, out string reason)
    {
        if (checkName && (errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0)
        {
            reason = $"certificate '{peer?.Subject}' does not name the host that was dialled";
            return false;
        }
        return Verify(peer, usageOid, DateTime.Now, out reason);
    }

    private static bool IsCertificateAuthority(X509Certificate2 cert) =>
        cert.Extensions.OfType<X509BasicConstraintsExtension>().Any(e => e.CertificateAuthority);
}

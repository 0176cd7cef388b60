using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Orchestrator.Core.Security;

/// <summary>
/// A cluster's own certificate authority, made with .NET's APIs (ECDSA P-256): it issues node certificates
/// (server and client authentication, the node's host names and addresses as subject alternative names)
/// and client certificates (client authentication only). The folder layout is in <see cref="CertificateFolder"/>.
/// </summary>
public sealed class CertificateAuthority : IDisposable
{
    public static readonly TimeSpan CaLifetime = TimeSpan.FromDays(3650);
    public static readonly TimeSpan LeafLifetime = TimeSpan.FromDays(825);

    private readonly ECDsa _key;

    private CertificateAuthority(X509Certificate2 certificate, ECDsa key) { Certificate = certificate; _key = key; }

    public X509Certificate2 Certificate { get; }

    public static CertificateAuthority Create(string name, DateTimeOffset notBefore, DateTimeOffset notAfter)
    {
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName($"CN={Escape(name)}"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var certificate = request.CreateSelfSigned(notBefore, notAfter);
        return new CertificateAuthority(X509CertificateLoader.LoadCertificate(certificate.RawData), key);
    }

    public static CertificateAuthority Create(string name) =>
        Create(name, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.Add(CaLifetime));

    public static CertificateAuthority Load(string certificatePem, string keyPem)
    {
        var certificate = X509Certificate2.CreateFromPem(certificatePem);
        var key = ECDsa.Create();
        key.ImportFromPem(keyPem);
        return new CertificateAuthority(certificate, key);
    }

    /// <summary>A node's certificate: the first host is its subject; every host is a DNS name or IP address entry.</summary>
    public X509Certificate2 IssueNode(IReadOnlyList<string> hosts, DateTimeOffset notBefore, DateTimeOffset notAfter)
    {
        if (hosts.Count == 0) throw new ArgumentException("a node certificate names at least one host", nameof(hosts));
        var names = new SubjectAlternativeNameBuilder();
        foreach (var host in hosts)
        {
            if (IPAddress.TryParse(host, out var ip)) names.AddIpAddress(ip);
            else names.AddDnsName(host);
        }
        return Issue($"CN={Escape(hosts[0])}, OU=node", [ClusterTrust.ServerAuthOid, ClusterTrust.ClientAuthOid], names.Build(), notBefore, notAfter);
    }

    public X509Certificate2 IssueNode(IReadOnlyList<string> hosts) => IssueNode(hosts, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.Add(LeafLifetime));

    /// <summary>A client's certificate (the console client, scripts): client authentication only, so it cannot act as a node.</summary>
    public X509Certificate2 IssueClient(string name) =>
        Issue($"CN={Escape(name)}, OU=client", [ClusterTrust.ClientAuthOid], null, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.Add(LeafLifetime));

    public string CertificatePem() => Certificate.ExportCertificatePem();

    public string KeyPem() => _key.ExportPkcs8PrivateKeyPem();

    private X509Certificate2 Issue(string subject, string[] usages, X509Extension? alternativeNames, DateTimeOffset notBefore, DateTimeOffset notAfter)
    {
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);   // owned by the returned certificate
        var request = new CertificateRequest(new X500DistinguishedName(subject), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyAgreement, true));
        var oids = new OidCollection();
        foreach (var usage in usages) oids.Add(new Oid(usage));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(oids, false));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Certificate, true, false));
        if (alternativeNames is not null) request.CertificateExtensions.Add(alternativeNames);
        if (notAfter > Certificate.NotAfter) notAfter = Certificate.NotAfter;
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F;   // a positive serial number
        using var signed = request.Create(Certificate.SubjectName, X509SignatureGenerator.CreateForECDsa(_key), notBefore, notAfter, serial);
        return signed.CopyWithPrivateKey(key);
    }

    private static string Escape(string value) => value.Replace("\\", "\\\\").Replace(",", "\\,").Replace("=", "\\=").Replace("+", "\\+");

    public void Dispose() => _key.Dispose();
}

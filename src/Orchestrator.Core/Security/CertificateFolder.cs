using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace Orchestrator.Core.Security;

/// <summary>
/// The files <c>orchestrator-node init --dir D</c> writes (keys mode 0600, folders 0700):
/// <code>
/// D/ca.crt                    the cluster CA (public; every node and client needs it)
/// D/ca.key                    its key: needed only to issue more certificates; keep it off the workers
/// D/nodes/&lt;host&gt;/ca.crt        a node's folder, copied whole to that host (--certs D/nodes/&lt;host&gt;)
/// D/nodes/&lt;host&gt;/node.crt
/// D/nodes/&lt;host&gt;/node.key
/// D/client/ca.crt, client.crt, client.key   for the console client
/// </code>
/// Running init again on the same folder keeps the CA and issues only what is missing.
/// </summary>
public static class CertificateFolder
{
    public const string CaCertificate = "ca.crt";
    public const string CaKey = "ca.key";
    public const string NodeCertificate = "node.crt";
    public const string NodeKey = "node.key";
    public const string ClientCertificate = "client.crt";
    public const string ClientKey = "client.key";

    /// <summary>What one init made, for its report.</summary>
    public sealed record InitResult(string CaPath, bool CaCreated, IReadOnlyList<string> NodeFolders, IReadOnlyList<string> CreatedFolders, string ClientFolder);

    public static InitResult Init(string dir, IReadOnlyList<string> hosts)
    {
        CreatePrivateFolder(dir);
        var caPath = Path.Combine(dir, CaCertificate);
        var caKeyPath = Path.Combine(dir, CaKey);
        bool created = false;
        CertificateAuthority ca;
        if (File.Exists(caPath) && File.Exists(caKeyPath))
            ca = CertificateAuthority.Load(File.ReadAllText(caPath), File.ReadAllText(caKeyPath));
        else if (File.Exists(caPath) || File.Exists(caKeyPath))
            throw new InvalidOperationException($"{dir}: one of {CaCertificate} and {CaKey} is missing; restore it or start from an empty folder");
        else
        {
            ca = CertificateAuthority.Create($"Orchestrator cluster CA {Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}");
            WritePrivate(caKeyPath, ca.KeyPem());
            WritePublic(caPath, ca.CertificatePem());
            created = true;
        }
        using (ca)
        {
            var nodes = new List<string>();
            var made = new List<string>();
            foreach (var host in hosts)
            {
                var folder = Path.Combine(dir, "nodes", host);
                nodes.Add(folder);
                if (File.Exists(Path.Combine(folder, NodeCertificate)) && File.Exists(Path.Combine(folder, NodeKey))) continue;
                CreatePrivateFolder(Path.Combine(dir, "nodes"));
                CreatePrivateFolder(folder);
                using var node = ca.IssueNode(HostNames(host));
                WritePrivate(Path.Combine(folder, NodeKey), node.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
                WritePublic(Path.Combine(folder, NodeCertificate), node.ExportCertificatePem());
                WritePublic(Path.Combine(folder, CaCertificate), ca.CertificatePem());
                made.Add(folder);
            }
            var client = Path.Combine(dir, "client");
            if (!File.Exists(Path.Combine(client, ClientCertificate)))
            {
                CreatePrivateFolder(client);
                using var cert = ca.IssueClient("orchestrator client");
                WritePrivate(Path.Combine(client, ClientKey), cert.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
                WritePublic(Path.Combine(client, ClientCertificate), cert.ExportCertificatePem());
                WritePublic(Path.Combine(client, CaCertificate), ca.CertificatePem());
            }
            return new InitResult(caPath, created, nodes, made, client);
        }
    }

    /// <summary>
    /// The names a host's certificate carries: the host itself, plus <c>localhost</c> and <c>127.0.0.1</c> for a
    /// loopback host, so that one local cluster's nodes and clients match it whichever they dial.
    /// </summary>
    public static IReadOnlyList<string> HostNames(string host) =>
        IsLoopback(host) ? new[] { host, "localhost", "127.0.0.1", "::1" }.Distinct(StringComparer.OrdinalIgnoreCase).ToArray() : [host];

    public static bool IsLoopback(string host) =>
        string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase)
        || (System.Net.IPAddress.TryParse(host, out var ip) && System.Net.IPAddress.IsLoopback(ip));

    /// <summary>A node's (or client's) certificate with its key, and the cluster CA, from one folder.</summary>
    public static (X509Certificate2 Certificate, ClusterTrust Trust) LoadIdentity(string folder, string certificateFile, string keyFile)
    {
        var certificatePath = Path.Combine(folder, certificateFile);
        var keyPath = Path.Combine(folder, keyFile);
        foreach (var path in new[] { certificatePath, keyPath, Path.Combine(folder, CaCertificate) })
            if (!File.Exists(path)) throw new FileNotFoundException($"{path} is missing", path);
        X509Certificate2 certificate;
        try { certificate = X509Certificate2.CreateFromPemFile(certificatePath, keyPath); }
        catch (CryptographicException ex) { throw new CryptographicException($"{certificatePath} with {keyPath}: {ex.Message}", ex); }
        var trust = ClusterTrust.Load(Path.Combine(folder, CaCertificate));
        if (!trust.Verify(certificate, certificateFile == NodeCertificate ? ClusterTrust.ServerAuthOid : ClusterTrust.ClientAuthOid, DateTime.Now, out var reason))
            throw new CryptographicException($"{certificatePath}: {reason}");
        return (certificate, trust);
    }

    public static void CreatePrivateFolder(string path)
    {
        if (OperatingSystem.IsWindows()) Directory.CreateDirectory(path);
        else Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    private static void WritePrivate(string path, string text) => Write(path, text, UnixFileMode.UserRead | UnixFileMode.UserWrite);

    private static void WritePublic(string path, string text) =>
        Write(path, text, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

    private static void Write(string path, string text, UnixFileMode mode)
    {
        var temp = path + ".tmp";
        File.Delete(temp);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = mode;
        using (var file = new FileStream(temp, options))
        {
            file.Write(Encoding.ASCII.GetBytes(text.EndsWith('\n') ? text : text + "\n"));
            file.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: true);
    }
}

using System.CommandLine;
using System.Security.Cryptography;
using Orchestrator.Core.Security;

namespace Orchestrator.Node;

/// <summary>
/// <c>orchestrator-node init --dir D [--hosts h1,h2,…]</c>: the cluster's CA, one certificate per node host and a
/// client certificate (layout in <see cref="CertificateFolder"/>). Run it on the operator's machine, copy
/// <c>D/nodes/&lt;host&gt;/</c> to each host, keep <c>D/ca.key</c> where only init runs.
/// </summary>
public static class InitCommand
{
    public static Command Create()
    {
        var dir = new Option<string>("--dir") { Description = "the folder to write (created mode 0700; an existing CA in it is reused)", Required = true };
        var hosts = new Option<string>("--hosts") { Description = "comma-separated host names or IP addresses, one certificate each (default 127.0.0.1)" };
        var command = new Command("init", "make the cluster's CA, node certificates and a client certificate") { dir, hosts };
        command.SetAction(result =>
        {
            var hostList = (result.GetValue(hosts) ?? "127.0.0.1").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (hostList.Length == 0) return Fail("--hosts: name at least one host");
            foreach (var host in hostList)
                if (host.Length > 253 || host.IndexOfAny(['/', '\\', ' ']) >= 0 || host.StartsWith('.') || Uri.CheckHostName(host) == UriHostNameType.Unknown)
                    return Fail($"--hosts: '{host}' is not a host name or IP address");
            try
            {
                var made = CertificateFolder.Init(Path.GetFullPath(result.GetValue(dir)!), hostList);
                Console.WriteLine(made.CaCreated ? $"cluster CA created: {made.CaPath}" : $"cluster CA reused: {made.CaPath}");
                foreach (var folder in made.NodeFolders)
                    Console.WriteLine($"node {Path.GetFileName(folder)}: {folder}{(made.CreatedFolders.Contains(folder) ? "" : " (already there)")}");
                Console.WriteLine($"client: {made.ClientFolder}");
                Console.WriteLine("copy a node's folder to its host and start it with --certs <folder>; keep ca.key off the workers");
                return 0;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException or InvalidOperationException)
            {
                return Fail(ex.Message);
            }
        });
        return command;
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine($"orchestrator-node init: {message}");
        return 2;
    }
}

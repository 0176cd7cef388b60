using System.CommandLine;
using Orchestrator.Node;

var roles = new Option<string>("--roles") { Description = "comma-separated roles: coordinator, worker, checkpoint", Required = true };
var config = new Option<string[]>("--config") { Description = "a HOCON file layered over the shipped defaults (repeatable; later wins)", AllowMultipleArgumentsPerToken = false };
var hostname = new Option<string?>("--hostname") { Description = "address to bind and advertise for Akka Remote (default 127.0.0.1)" };
var port = new Option<int?>("--port") { Description = "Akka Remote port (default from configuration; 0 = any free port)" };
var seeds = new Option<string[]>("--seed") { Description = "a seed node, akka.ssl.tcp://orchestrator@host:port (akka.tcp:// with --insecure; repeatable; default $ORCHESTRATOR_SEEDS or akka.cluster.seed-nodes)" };
var certs = new Option<string?>("--certs") { Description = "this node's certificate folder (ca.crt, node.crt, node.key; see `orchestrator-node init`; default orchestrator.tls.dir)" };
var insecure = new Option<bool>("--insecure") { Description = "no TLS between nodes: development on loopback only (refused on any other address)" };
var dataDir = new Option<string?>("--data-dir") { Description = "the node's data folder: journal, API token, job output" };
var apiPort = new Option<int?>("--api-port") { Description = "port of the job API on coordinator nodes" };
var settings = new Option<string[]>("--set") { Description = "a configuration override, path=value in HOCON (repeatable; wins over files)" };

var root = new RootCommand("orchestrator-node: one Orchestrator cluster node (coordinator, worker and/or checkpoint roles)")
{
    roles, config, hostname, port, seeds, dataDir, apiPort, settings, certs, insecure,
};
root.Subcommands.Add(InitCommand.Create());
root.SetAction(async (result, cancellation) =>
{
    NodeOptions options;
    try
    {
        var roleList = result.GetValue(roles)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var role in roleList)
            if (!NodeOptions.KnownRoles.Contains(role))
                throw new NodeUsageException($"--roles: unknown role '{role}' (known: {string.Join(", ", NodeOptions.KnownRoles)})");
        if (roleList.Length == 0) throw new NodeUsageException("--roles: name at least one role");
        options = new NodeOptions(roleList, result.GetValue(config) ?? [], result.GetValue(hostname), result.GetValue(port),
            result.GetValue(seeds) ?? [], result.GetValue(dataDir), result.GetValue(apiPort), result.GetValue(settings) ?? [],
            result.GetValue(certs), result.GetValue(insecure));
        return await NodeHost.RunAsync(options, cancellation);
    }
    catch (NodeUsageException ex)
    {
        Console.Error.WriteLine($"orchestrator-node: {ex.Message}");
        return 2;
    }
});

var parsed = root.Parse(args);
if (parsed.Errors.Count > 0)
{
    foreach (var error in parsed.Errors) Console.Error.WriteLine($"orchestrator-node: {error.Message}");
    return 2;
}
return await parsed.InvokeAsync();

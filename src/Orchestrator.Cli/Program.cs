using System.CommandLine;
using Orchestrator.Cli;
using Orchestrator.Cli.Commands;

var root = new RootCommand("orchestrator: the Orchestrator console client (distributed data-parallel training for .NET)");
root.Subcommands.Add(RunCommand.Create());
root.Subcommands.Add(CompareCommand.Create());
foreach (var command in ClusterCommands.Create()) root.Subcommands.Add(command);

var parsed = root.Parse(args);
if (parsed.Errors.Count > 0)
{
    foreach (var error in parsed.Errors) Console.Error.WriteLine($"orchestrator: {error.Message}");
    Console.Error.WriteLine("Try 'orchestrator --help'.");
    return ExitCodes.BadInput;
}
return parsed.Invoke();

using Orchestrator.Core.Jobs;
using Orchestrator.Training.Data;
using Orchestrator.Training.Safetensors;

namespace Orchestrator.Cli;

/// <summary>
/// Turns expected failures into one line on stderr and an exit code; no stack trace for anything a
/// user can cause. Anything else is a bug and keeps its stack trace.
/// </summary>
public static class CliErrors
{
    public static int Run(Func<int> command)
    {
        try
        {
            return command();
        }
        catch (JobSpecException ex)
        {
            return Report(ex.Field.Length == 0 ? $"invalid job: {ex.Problem}" : $"invalid job: field '{ex.Field}': {ex.Problem}", ExitCodes.BadInput);
        }
        catch (IdxFormatException ex) { return Report($"bad dataset file: {ex.Message}", ExitCodes.BadInput); }
        catch (SafetensorsFormatException ex) { return Report($"not a valid safetensors file: {ex.Message}", ExitCodes.BadInput); }
        catch (UsageException ex) { return Report(ex.Message, ExitCodes.BadInput); }
        catch (Client.ApiException ex) { return Report(ex.Message, ex.ExitCode); }
        catch (OperationCanceledException) { return Report("cancelled", ExitCodes.Failed); }
        catch (IOException ex) { return Report(ex.Message, ExitCodes.Failed); }
        catch (UnauthorizedAccessException ex) { return Report(ex.Message, ExitCodes.Failed); }
    }

    public static int Report(string message, int code)
    {
        Console.Error.WriteLine($"orchestrator: {message}");
        return code;
    }
}

/// <summary>Bad usage that the command-line parser cannot see (a value out of range, a missing file).</summary>
public sealed class UsageException(string message) : Exception(message);

namespace Orchestrator.Cli;

/// <summary>The exit codes that scripts rely on (PRODUCT.md section 7).</summary>
public static class ExitCodes
{
    public const int Success = 0;
    /// <summary>The operation failed (message on stderr).</summary>
    public const int Failed = 1;
    /// <summary>Bad usage or bad input (message on stderr, naming the field or file).</summary>
    public const int BadInput = 2;
}

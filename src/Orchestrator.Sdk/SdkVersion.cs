namespace Orchestrator.Sdk;

/// <summary>
/// The SDK's version. A package records the version it was built against (its reference to this
/// assembly); the host refuses one whose major version differs from <see cref="Major"/>.
/// </summary>
public static class SdkVersion
{
    /// <summary>Changes when the contract changes incompatibly.</summary>
    public static int Major => typeof(SdkVersion).Assembly.GetName().Version!.Major;

    /// <summary>The full version, as packages see it.</summary>
    public static Version Current => typeof(SdkVersion).Assembly.GetName().Version!;
}

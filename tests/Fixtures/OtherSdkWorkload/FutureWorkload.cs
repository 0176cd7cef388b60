namespace Fixtures;

public sealed class FutureWorkload
{
    public int SdkVersion => Orchestrator.Sdk.FutureMarker.Version;
}

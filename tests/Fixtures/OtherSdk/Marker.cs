namespace Orchestrator.Sdk;

public static class FutureMarker
{
    public static int Version => 2;
}

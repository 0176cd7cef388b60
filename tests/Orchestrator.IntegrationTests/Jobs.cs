using Orchestrator.TestSupport;

namespace Orchestrator.IntegrationTests;

/// <summary>Job files for the tests, written to a temp folder of this test run that is removed when it ends.</summary>
internal static class Jobs
{
    private static readonly string Folder = CreateFolder();

    private static string CreateFolder()
    {
        var folder = Directory.CreateTempSubdirectory("orch-it-jobs-").FullName;
        AppDomain.CurrentDomain.ProcessExit += (_, _) => { try { Directory.Delete(folder, recursive: true); } catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { } };
        return folder;
    }

    public static string Write(string json)
    {
        var path = Path.Combine(Folder, "job-" + Guid.NewGuid().ToString("N")[..8] + ".json");
        File.WriteAllText(path, json);
        return path;
    }

    /// <summary>The example character-level transformer, as a package from its build folder, on the text that Debian's base-files ships.</summary>
    public static string Transformer(string name, int maxSteps, int workers = 2, int devicesPerWorker = 1, int batch = 8, string transport = "akka",
        string optimizer = """{ "type": "adamw", "lr": 0.002, "clipGradNorm": 1.0 }""", int checkpointEvery = 500,
        string shape = """ "layers": 4, "width": 128, "heads": 4, "context": 64 """, string compression = "none", int bucketBytes = 4 * 1024 * 1024) => Write($$"""
        {
          "name": "{{name}}",
          "workload": { "package": "{{Packages.Example("CharTransformer")}}", "type": "Examples.CharTransformer.CharLanguageModel",
                        "args": { "text": "/usr/share/common-licenses/GPL-3", {{shape}} } },
          "workers": {{workers}}, "devicesPerWorker": {{devicesPerWorker}}, "epochs": 100, "maxSteps": {{maxSteps}},
          "batchSizePerDevice": {{batch}}, "optimizer": {{optimizer}}, "lrSchedule": { "warmupSteps": 10, "decay": "cosine", "minLr": 0.0002 },
          "seed": 42, "allReduce": { "transport": "{{transport}}", "compression": "{{compression}}", "bucketBytes": {{bucketBytes}} }, "checkpoint": { "everySteps": {{checkpointEvery}}, "keep": 2 }
        }
        """);

    public static string Mlp(string name, int maxSteps, int devicesPerWorker = 1, int epochs = 1, int workers = 1, int batch = 64,
        string transport = "akka", string seed = "7", int maxFailures = 3, int checkpointEvery = 500, string compression = "none") => Write($$"""
        {
          "name": "{{name}}", "model": "mlp", "dataset": { "name": "fashion-mnist" },
          "workers": {{workers}}, "devicesPerWorker": {{devicesPerWorker}}, "epochs": {{epochs}}, "maxSteps": {{maxSteps}},
          "batchSizePerDevice": {{batch}}, "optimizer": { "type": "sgd", "lr": 0.05, "momentum": 0.9 }, "seed": {{seed}},
          "allReduce": { "transport": "{{transport}}", "compression": "{{compression}}" }, "maxFailures": {{maxFailures}},
          "checkpoint": { "everySteps": {{checkpointEvery}}, "keep": 2, "metric": "accuracy" }
        }
        """);
}

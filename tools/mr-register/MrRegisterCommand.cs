using System.CommandLine;
using Microsoft.Extensions.Logging;
using ModelCar.Common.Cli;
using ModelCar.ModelRegistry;

namespace ModelCar.MrRegister;

/// <summary>
/// mr-register: `register` (idempotent find-or-create of model, version and artifact) and
/// `lookup` (the artifact uri of an existing version, for the deploy pipeline).
/// The options are in MrRegisterOptions.cs; the work is ModelRegistry's (<see cref="ModelRegistration"/>).
/// </summary>
public static class MrRegisterCommand
{
    /// <summary>The Tekton results this tool writes with --results-dir (the Tasks' contract test checks them).</summary>
    public static class Result
    {
        public const string RegisteredModelId = "registered-model-id";
        public const string ModelVersionId = "model-version-id";
        public const string ModelArtifactId = "model-artifact-id";
        public const string ModelUri = "model-uri";
    }

    public static IReadOnlyList<string> ResultNames { get; } = [Result.RegisteredModelId, Result.ModelVersionId, Result.ModelArtifactId, Result.ModelUri];

    public const string Name = "mr-register";

    public static RootCommand Create()
    {
        var root = ToolApp.CreateRoot("Register a model, version and artifact in the Kubeflow Model Registry, idempotently; or look up a version's artifact uri.");
        root.Subcommands.Add(CreateRegister());
        root.Subcommands.Add(CreateLookup());
        return root;
    }

    private static Command CreateRegister()
    {
        var cmd = new Command("register", "Find or create the registered model and its version, then create (or check / --update) the version's model artifact.");
        var conn = new ConnectionOptions();
        var options = new RegisterOptions();
        conn.AddTo(cmd);
        foreach (var o in options.All)
        {
            cmd.Options.Add(o);
        }

        cmd.SetToolAction(Name, [Hints], async (ctx, ct) =>
        {
            var request = options.RequestFrom(ctx);
            bool dry = ctx.Get(options.DryRun);
            var result = await ModelRegistration.RegisterAsync(conn.From(ctx), request, dry ? line => ctx.WriteResult(line) : null, ctx.Logger, ct);
            if (result.ArtifactLeftDifferent)
            {
                ctx.Logger.LogWarning("model artifact {Id} has the same uri but other fields differ; left unchanged (pass --update to update it)", result.ModelArtifactId);
            }
            if (dry)
            {
                ctx.Logger.LogInformation("dry run: {Count} write(s) not sent", result.Writes);
                return ExitCodes.Ok;
            }
            ctx.WriteResult($"registered-model-id={result.RegisteredModelId}");
            ctx.WriteResult($"model-version-id={result.ModelVersionId}");
            ctx.WriteResult($"model-artifact-id={result.ModelArtifactId}");
            WriteResults(ctx, result.RegisteredModelId, result.ModelVersionId, result.ModelArtifactId, result.Uri);
            ctx.Logger.LogInformation("registered '{Model}' version '{Version}': {Writes} write(s)", request.ModelName, request.VersionName, result.Writes);
            return ExitCodes.Ok;
        });
        return cmd;
    }

    /// <summary>Which option to change for a Model Registry failure (the library names none).</summary>
    public static string? Hints(Exception e) => ModelCar.Common.Cli.Hints.Join(
        ModelCar.Common.Cli.Hints.For(e, ModelRegistryReason.NoToken, "or give one with --token-file"),
        ModelCar.Common.Cli.Hints.For(e, ModelRegistryReason.ArtifactConflict, "pass --update to replace it in place"));

    private static Command CreateLookup()
    {
        var cmd = new Command("lookup", "Print the uri of the first model artifact of an existing model version (exit 1 if the model or version does not exist).");
        var conn = new ConnectionOptions();
        var modelName = NameOptions.Name("--model-name", "Registered model name (matched exactly; printable ASCII).");
        var versionName = NameOptions.Name("--version-name", "Model version name (matched exactly; printable ASCII).");
        var output = new Option<string>("--output")
        {
            Description = "text: the uri alone (default); json: uri, ids, names and the artifact's and version's custom properties.",
            HelpName = "text|json",
            DefaultValueFactory = _ => "text",
        };
        output.AcceptOnlyFromAmong("text", "json");
        conn.AddTo(cmd);
        cmd.Options.Add(modelName);
        cmd.Options.Add(versionName);
        cmd.Options.Add(output);
        cmd.SetToolAction(Name, [Hints], async (ctx, ct) =>
        {
            var found = await ModelRegistration.LookupAsync(conn.From(ctx), ctx.Get(modelName)!, ctx.Get(versionName)!, ctx.Logger, ct);
            ctx.WriteResult(ctx.Get(output) == "json" ? found.ToJson() : found.Artifact.Uri!);
            WriteResults(ctx, found.Model.Id, found.Version.Id, found.Artifact.Id, found.Artifact.Uri!);
            return ExitCodes.Ok;
        });
        return cmd;
    }

    private static void WriteResults(ToolContext ctx, string modelId, string versionId, string artifactId, string uri)
    {
        ctx.Results.Write(Result.RegisteredModelId, modelId);
        ctx.Results.Write(Result.ModelVersionId, versionId);
        ctx.Results.Write(Result.ModelArtifactId, artifactId);
        ctx.Results.Write(Result.ModelUri, uri);
    }
}

using System.CommandLine;
using ModelCar.Common.Cli;

namespace ModelCar.HuggingFace.Cli;

/// <summary>
/// The Hub options of the commands that read from the Hub (hf-fetch, oci-pack --model hf://): repository type,
/// endpoint and token file, defined once with their environment fallbacks (HF_ENDPOINT, HF_TOKEN /
/// HUGGING_FACE_HUB_TOKEN / HF_HOME/token, HF_HUB_OFFLINE). The commands' binding layer: nothing in the
/// HuggingFace library reads these options.
/// </summary>
public sealed class HubOptions
{
    public Option<string> RepoType { get; } = MakeRepoType();

    public Option<string?> Endpoint { get; } = new("--endpoint")
    {
        Description = "Hub URL (default $HF_ENDPOINT, else https://huggingface.co).",
        HelpName = "URL",
    };

    public Option<string?> TokenFile { get; } = new("--token-file")
    {
        Description = "File holding the Hub token (default $HF_TOKEN, $HUGGING_FACE_HUB_TOKEN, $HF_HOME/token).",
        HelpName = "FILE",
    };

    public IEnumerable<Option> All => [RepoType, Endpoint, TokenFile];

    public ModelCar.HuggingFace.RepoType RepoTypeFrom(ToolContext ctx) =>
        ctx.Get(RepoType) == "dataset" ? ModelCar.HuggingFace.RepoType.Dataset : ModelCar.HuggingFace.RepoType.Model;

    public string EndpointFrom(ToolContext ctx, Func<string, string?> env) => HubPaths.ResolveEndpoint(ctx.Get(Endpoint), env);

    public string? TokenFrom(ToolContext ctx, Func<string, string?> env) => HubCredentials.ResolveToken(ctx.Get(TokenFile), env);

    public static bool IsOffline(Func<string, string?> env) => HubPaths.IsOfflineEnv(env);

    /// <summary>
    /// Which option to change for a Hub failure (<see cref="HubReason"/> anywhere in its chain), for
    /// <see cref="ToolApp.SetToolAction"/>; <paramref name="revision"/> names where the command takes
    /// the revision from (hf-fetch: --revision; oci-pack: the @REVISION of --model hf://).
    /// </summary>
    public static Func<Exception, string?> HintsFor(string revision) => e => Hints.Join(
        Hints.For(e, HubReason.GatedRepo, "or give that token with --token-file"),
        Hints.For(e, HubReason.InvalidToken, "check HF_TOKEN / --token-file"),
        Hints.For(e, HubReason.RepoNotFound, "see --repo-type"),
        Hints.For(e, HubReason.RevisionNotFound, $"see {revision}"),
        Hints.For(e, HubReason.NoFileMatchesFilter, "check --include/--exclude"));

    private static Option<string> MakeRepoType()
    {
        var o = new Option<string>("--repo-type")
        {
            Description = "model or dataset (default model).",
            DefaultValueFactory = _ => "model",
        };
        o.AcceptOnlyFromAmong("model", "dataset");
        return o;
    }
}

using System.CommandLine;
using Microsoft.Extensions.Logging;
using ModelCar.Common.Cli;
using ModelCar.Common.Http;
using ModelCar.Common.IO;
using ModelCar.HuggingFace;
using ModelCar.HuggingFace.Cli;

namespace ModelCar.HfFetch;

/// <summary>Download a Hugging Face Hub repository at a revision: resumable, sha256-verified.</summary>
public static class HfFetchCommand
{
    /// <summary>The Tekton results this tool writes with --results-dir (the Tasks' contract test checks them).</summary>
    public static class Result
    {
        public const string Commit = "commit";
        public const string Files = "files";
        public const string Bytes = "bytes";
    }

    public static IReadOnlyList<string> ResultNames { get; } = [Result.Commit, Result.Files, Result.Bytes];

    public const string Name = "hf-fetch";

    public static RootCommand Create()
    {
        var root = ToolApp.CreateRoot("Download a Hugging Face Hub repository at a revision: resumable, sha256-verified.");
        var repoId = new Argument<string>("REPO_ID") { Description = "Repository id, e.g. ibm-granite/granite-3.3-2b-instruct." };
        var dest = new Option<string>("--dest")
        {
            Description = "Directory to download into (plain files; state under DIR/.hf-fetch/).",
            HelpName = "DIR",
            Required = true,
        };
        var revision = new Option<string?>("--revision")
        {
            Description = "Branch, tag, refs/pr/N or commit (default main).",
            HelpName = "REV",
        };
        var hub = new HubOptions();
        var include = new Option<string[]>("--include")
        {
            Description = "Only files matching this glob (repeatable; fnmatch: '*' crosses '/', trailing '/' = folder).",
            HelpName = "GLOB",
            DefaultValueFactory = _ => [],
        };
        var exclude = new Option<string[]>("--exclude")
        {
            Description = "Skip files matching this glob (repeatable; applied after --include).",
            HelpName = "GLOB",
            DefaultValueFactory = _ => [],
        };
        var jobs = CommonOptions.Jobs(4);
        var offline = new Option<bool>("--offline")
        {
            Description = "No network: succeed only if DIR already holds a complete verified snapshot (also HF_HUB_OFFLINE=1).",
        };
        var chunkSize = CommonOptions.ChunkSize("Range chunk size, at least 1M; files of at least twice this size download in concurrent chunks (default 32M).");
        var retries = CommonOptions.Retries();
        var stallTimeout = CommonOptions.StallTimeout();
        var maxRetryWait = CommonOptions.MaxRetryWait();
        var tlsVerify = CommonOptions.TlsVerify();
        var caFile = CommonOptions.CaFile();
        var lockTimeout = CommonOptions.LockTimeout();
        root.Arguments.Add(repoId);
        foreach (var option in new Option[] { dest, revision, hub.RepoType, include, exclude, hub.Endpoint, hub.TokenFile, jobs, offline, chunkSize, retries, stallTimeout, maxRetryWait, tlsVerify, caFile, lockTimeout })
        {
            root.Options.Add(option);
        }

        root.SetToolAction(Name, [HubOptions.HintsFor("--revision")], async (ctx, ct) =>
        {
            Func<string, string?> env = Environment.GetEnvironmentVariable;
            var id = ctx.ParseResult.GetValue(repoId)!;
            HubPaths.ValidateRepoId(id);
            var rev = ctx.Get(revision);
            if (rev is not null && (rev.Length == 0 || rev.Any(char.IsControl)))
            {
                throw new UsageException("--revision must not be empty");
            }
            var request = new FetchRequest
            {
                RepoId = id,
                RepoType = hub.RepoTypeFrom(ctx),
                Revision = rev ?? "main",
                Dest = Path.GetFullPath(ctx.Required(dest)),
                Include = ctx.Get(include) ?? [],
                Exclude = ctx.Get(exclude) ?? [],
                Jobs = ctx.Get(jobs),
                ChunkSize = ctx.Get(chunkSize) ?? FetchRequest.DefaultChunkSize,
            };
            var fetcher = new SnapshotFetcher(ctx.Logger);
            // one run per DIR: a second one would "resume" the first one's partial files under its feet
            var store = new LocalState(request.Dest);
            bool isOffline = ctx.Get(offline) || HubOptions.IsOffline(env);
            using var destLock = isOffline && !Directory.Exists(store.StateDir)
                ? null // nothing to verify there, and offline creates nothing
                : await CommonOptions.AcquireLockAsync(ctx, lockTimeout, store.LockPath, $"destination {request.Dest}", ct);
            if (store.RemoveStaleTempFiles() is > 0 and var stale)
            {
                ctx.Logger.LogInformation("removed {Count} stale temp file(s) of an earlier run in {Dir}", stale, store.StateDir);
            }
            FetchSummary summary;
            if (isOffline)
            {
                summary = await fetcher.VerifyOfflineAsync(request, rev is not null, ct);
            }
            else
            {
                var hubEndpoint = hub.EndpointFrom(ctx, env);
                var token = hub.TokenFrom(ctx, env);
                var settings = CommonOptions.HttpSettingsFrom(ctx.ParseResult, tlsVerify, caFile, retries, stallTimeout, maxRetryWait);
                using var http = HttpClientFactory.Create(settings);
                var client = new HubClient(http, hubEndpoint, token, settings, ctx.Logger);
                ctx.Logger.LogDebug("endpoint {Endpoint}, {Auth}", ModelCar.Common.Logging.Redactor.Url(new Uri(hubEndpoint)), token is null ? "anonymous" : "with a token");
                summary = await fetcher.FetchAsync(client, request, ct);
            }
            ctx.Logger.LogInformation("{Repo}@{Commit}: {Files} files, {Bytes} in {Dest} ({Downloaded} downloaded, {Skipped} files already verified)",
                id, summary.Commit, summary.Files, SizeParser.Format(summary.Bytes), request.Dest, SizeParser.Format(summary.Downloaded), summary.Skipped);
            ctx.Results.Write(Result.Commit, summary.Commit);
            ctx.Results.Write(Result.Files, summary.Files.ToString(System.Globalization.CultureInfo.InvariantCulture));
            ctx.Results.Write(Result.Bytes, summary.Bytes.ToString(System.Globalization.CultureInfo.InvariantCulture));
            ctx.WriteResult(summary.Commit);
            return ExitCodes.Ok;
        });
        return root;
    }
}

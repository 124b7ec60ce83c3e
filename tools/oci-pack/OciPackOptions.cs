using System.CommandLine;
using ModelCar.Common.Cli;
using ModelCar.HuggingFace.Cli;
using ModelCar.Oci;
using ModelCar.Packing;
using ModelCar.Registry.Cli;
using ModelCar.Signing.Cli;

namespace ModelCar.OciPack;

/// <summary>oci-pack's options (the shared groups: hf-fetch's Hub options, registry-push's registry and signing options).</summary>
public sealed class OciPackOptions
{
    public Option<string> Model { get; } = new("--model")
    {
        Description = "The model: a directory (e.g. what hf-fetch wrote), or hf://ORG/NAME[@REVISION] to stream the files from the Hub straight into the outputs (no copy on disk).",
        HelpName = "DIR|hf://ORG/NAME[@REV]",
        Required = true,
    };
    // --repo-type, --endpoint, --token-file: hf-fetch's definitions (for --model hf://)
    public HubOptions Hub { get; } = new();
    public Option<string[]> Output { get; } = new("--output")
    {
        Description = "Where the image goes: oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker://HOST[:PORT]/REPO[:TAG] (repeatable, any mix: all from one read of the model).",
        HelpName = "DEST",
        Required = true,
        Arity = ArgumentArity.OneOrMore,
        AllowMultipleArgumentsPerToken = false,
    };
    public Option<string?> StateDir { get; } = new("--state-dir")
    {
        Description = $"Where the layer digests of this model are remembered for the next run (default: MODEL/{LayerDigestRecord.DirectoryName}/, never packed; use this for a read-only model directory).",
        HelpName = "DIR",
    };
    public Option<string> Base { get; } = new("--base")
    {
        Description = "Base image with a shell: docker://REF, oci:DIR[:REF], oci-archive:FILE[:REF] or scratch (needs --allow-no-shell).",
        HelpName = "IMAGE",
        Required = true,
    };
    public Option<string> ModelsPath { get; } = new("--models-path") { Description = "Where the model goes in the image (default /models).", DefaultValueFactory = _ => "/models", HelpName = "PATH" };
    public Option<string[]> Include { get; } = new("--include") { Description = "Only files matching GLOB (huggingface_hub fnmatch; repeatable).", HelpName = "GLOB", DefaultValueFactory = _ => [] };
    public Option<string[]> Exclude { get; } = new("--exclude") { Description = "Leave out files matching GLOB (repeatable; .cache/, .hf-fetch/ and .oci-pack/ always are).", HelpName = "GLOB", DefaultValueFactory = _ => [] };
    public Option<string> Owner { get; } = new("--owner") { Description = "UID:GID of the model files in the image (default 0:0).", DefaultValueFactory = _ => "0:0", HelpName = "UID:GID" };
    public Option<string> User { get; } = new("--user") { Description = "Config User (default 1001).", DefaultValueFactory = _ => "1001", HelpName = "UID" };
    public Option<string[]> Label { get; } = new("--label") { Description = "Config label KEY=VALUE (repeatable).", HelpName = "K=V", DefaultValueFactory = _ => [] };
    public Option<string[]> Annotation { get; } = new("--annotation") { Description = "Manifest annotation KEY=VALUE (repeatable).", HelpName = "K=V", DefaultValueFactory = _ => [] };
    public Option<long?> LayerThreshold { get; } = CommonOptions.Size("--layer-threshold", "Files of at least SIZE get a layer each; smaller files share one (default 16M).");
    public Option<string?> Platform { get; } = new("--platform")
    {
        Description = "OS/ARCH[/VARIANT] to pick from a multi-arch base (default linux/amd64); a comma-separated list or 'all' (every platform of the base index with sh) makes an image index, one manifest per platform.",
        HelpName = "PLATFORMS",
    };
    public Option<bool> AllowNoShell { get; } = new("--allow-no-shell") { Description = "Only warn when the base has no sh (e.g. for KServe's oci+native image volumes)." };
    public Option<bool> ClearEntrypoint { get; } = new("--clear-entrypoint") { Description = "Drop the base image's ENTRYPOINT (it would receive KServe's sh -c args)." };
    public Option<int?> MaxLayers { get; } = new("--max-layers")
    {
        Description = $"At most N layers in the image, base included (default {PackJob.DefaultMaxLayers}: Docker's overlay2 and podman 4.3 run at most {PackJob.OverlayDepthCap}); files over --layer-threshold share layers when there would be more, the largest stay alone.",
        HelpName = "N",
        Validators = { r => { if (r.GetValueOrDefault<int?>() is < 2) { r.AddError("--max-layers must be 2 or more"); } } },
    };
    public Option<string> Format { get; } = new("--format")
    {
        Description = "modelcar (default), or modelcar,modelpack: also a CNCF ModelPack manifest in the image index, over the same layer blobs (a one-platform image becomes an index).",
        HelpName = "FORMATS",
        DefaultValueFactory = _ => "modelcar",
    };
    public Option<bool> AllowIncomplete { get; } = new("--allow-incomplete") { Description = "Pack a model dir whose hf-fetch download has not finished (only a warning)." };
    public Option<int?> LockTimeout { get; } = CommonOptions.LockTimeout();
    public Option<bool> DryRun { get; } = new("--dry-run")
    {
        Description = "Print the plan (files → layers, platforms, what each output already has, bytes to send, limits) and stop: nothing is read from the model, written or uploaded. Exit 0 if the real run would start, 1 with the first problem.",
    };
    public Option<string?> ModelSignature { get; } = new("--model-signature")
    {
        Description = "Also write the model's OpenSSF model-signing v1.0 signature (the Sigstore bundle model.sig that `model_signing verify key` checks against the model directory) to FILE, signed with --sign-key from the sha256 taken during the one read, and push it as a bundle referrer of the image to every docker:// output. Mode 0644.",
        HelpName = "FILE",
    };
    // credentials, TLS, --jobs (layers in parallel), chunking, retries, --max-blob-size: registry-push's definitions
    public RegistryOptions Registry { get; } = new(defaultJobs: Math.Clamp(Environment.ProcessorCount, 1, 4), defaultRetries: 5);
    // --sign-key, --sign-key-password-file, --attest: registry-push's definitions
    public SigningOptions Signing { get; } = new();

    /// <summary>Every option, in --help's order.</summary>
    public IEnumerable<Option> All => new Option[] { Model, Output, Base, ModelsPath, Include, Exclude, Owner, User, Label, Annotation, LayerThreshold, MaxLayers, Format, Platform, AllowNoShell, ClearEntrypoint, AllowIncomplete, StateDir, LockTimeout, DryRun, ModelSignature }
        .Concat(Hub.All).Concat(Registry.All).Concat(Signing.All);

    /// <summary>--format: modelcar, or modelcar,modelpack (in any order); true when ModelPack is asked for.</summary>
    public static bool ParseFormats(string text)
    {
        var formats = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
        var unknown = formats.FirstOrDefault(f => f is not ("modelcar" or "modelpack"));
        if (unknown is not null || formats.Count == 0)
        {
            throw new UsageException($"--format '{text}': use modelcar or modelcar,modelpack");
        }
        if (!formats.Contains("modelcar"))
        {
            throw new UsageException($"--format '{text}': the ModelPack manifest rides in the ModelCar image's index; use modelcar,modelpack");
        }
        return formats.Contains("modelpack");
    }

    /// <summary>A library parse of an option's value; bad input names the option (exit 2).</summary>
    public static T Parsed<T>(string option, Func<T> parse)
    {
        try
        {
            return parse();
        }
        catch (PackingInputException e)
        {
            throw new UsageException($"{option} {e.Message}", e);
        }
    }

    public static (int Uid, int Gid) ParseOwner(string text)
    {
        var parts = text.Split(':');
        if (parts.Length == 2 && int.TryParse(parts[0], out int uid) && int.TryParse(parts[1], out int gid) && uid >= 0 && gid >= 0)
        {
            return (uid, gid);
        }
        throw new UsageException($"--owner '{text}' is not UID:GID (numbers, e.g. 0:0)");
    }

    public static string ParseModelsPath(string text)
    {
        var parts = text.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (!text.StartsWith('/') || parts.Length == 0 || parts.Any(p => p is "." or ".."))
        {
            throw new UsageException($"--models-path '{text}' must be an absolute path below / without . or .. (e.g. /models)");
        }
        return "/" + string.Join('/', parts);
    }

    public static Dictionary<string, string> ParsePairs(IEnumerable<string> values, string option)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var v in values)
        {
            int eq = v.IndexOf('=');
            if (eq <= 0)
            {
                throw new UsageException($"{option} '{v}' is not KEY=VALUE");
            }
            result[v[..eq]] = v[(eq + 1)..];
        }
        return result;
    }

    /// <summary>--output (repeatable): <see cref="PackOutputs.Parse"/>, bad input naming the option (exit 2).</summary>
    public static IReadOnlyList<ImageLocation> ParseOutputs(IReadOnlyList<string> texts)
    {
        try
        {
            return texts.Count > 0 ? PackOutputs.Parse(texts) : throw new UsageException("at least one --output is required");
        }
        catch (FormatException e)
        {
            throw new UsageException($"--output: {e.Message}");
        }
        catch (SameOutputTwiceException e)
        {
            throw new UsageException($"--output '{e.Text}' names the same place as another --output");
        }
        catch (PackingInputException e)
        {
            throw new UsageException($"--output {e.Message}", e);
        }
    }

    /// <summary>An image location (oci:, oci-archive:, docker://, scratch); bad input names the option (exit 2).</summary>
    public static ImageLocation ParseLocation(string text, string option)
    {
        try
        {
            return ImageLocation.Parse(text);
        }
        catch (FormatException e)
        {
            throw new UsageException($"{option}: {e.Message}");
        }
    }
}

using ModelCar.Common.Http;
using ModelCar.HuggingFace;
using ModelCar.Oci;
using ModelCar.Registry;
using ModelCar.Registry.Auth;

namespace ModelCar.Packing;

/// <summary>The model to pack: a local directory (e.g. what hf-fetch wrote) or a Hub repository at a revision (hf://ORG/NAME[@REV]).</summary>
public sealed record PackModel(string Text, string? Directory, HubModelReference? Hub)
{
    /// <summary>hf://… is a Hub reference (malformed: <see cref="PackingInputException"/>), anything else a directory.</summary>
    public static PackModel Parse(string text) => HubModelReference.IsHubReference(text)
        ? new(text, null, HubModelReference.Parse(text))
        : new(text, Path.GetFullPath(text), null);
}

/// <summary>Where and how a Hub model is read: the endpoint, the token (null: anonymous) and the repository type.</summary>
public sealed record HubAccess(string Endpoint, string? Token, RepoType RepoType);

/// <summary>Everything one pack needs, typed: what the command parsed from its options.</summary>
public sealed record PackRequest
{
    public required PackModel Model { get; init; }

    /// <summary>For a Hub model: how to reach the Hub (required then).</summary>
    public HubAccess? Hub { get; init; }

    public PathFilter Filter { get; init; } = PathFilter.Create([], []);

    /// <summary>The base image (scratch, a layout, an archive or a registry).</summary>
    public required ImageLocation Base { get; init; }

    /// <summary>The outputs, in the order given (<see cref="PackOutputs.Parse"/>): their results come in the same order.</summary>
    public required IReadOnlyList<ImageLocation> Outputs { get; init; }

    public PlatformRequest Platforms { get; init; } = PlatformRequest.Unspecified;

    /// <summary>The image settings; <see cref="PackSettings.Annotations"/> are the caller's, which win over the model's own (Hub, hf-fetch).</summary>
    public required PackSettings Settings { get; init; }

    /// <summary>Pack a directory whose hf-fetch download has not finished (a warning instead of a failure).</summary>
    public bool AllowIncomplete { get; init; }

    /// <summary>A base without sh is only warned about (images only mounted as volumes).</summary>
    public bool AllowNoShell { get; init; }

    /// <summary>The layer budget of the whole image, base included (<see cref="PackJob.DefaultMaxLayers"/>).</summary>
    public int MaxLayers { get; init; } = PackJob.DefaultMaxLayers;

    /// <summary>The largest blob the registries take (null: no limit).</summary>
    public long? MaxBlobSize { get; init; }

    /// <summary>Where the layer record is kept (null: the model directory's, or the Hugging Face home for a Hub model).</summary>
    public string? StateDirectory { get; init; }

    /// <summary>Only plan (<see cref="PackJobResult.Plan"/>): nothing is read from the model, written or uploaded.</summary>
    public bool DryRun { get; init; }

    public ICredentialProvider Credentials { get; init; } = new AnonymousCredentialProvider();

    public required HttpSettings Http { get; init; }

    public UploadOptions Upload { get; init; } = new();

    /// <summary>Layers read (and sent) in parallel.</summary>
    public int Jobs { get; init; } = 1;

    /// <summary>The environment (HF_HOME, XDG_CACHE_HOME, HOME for the Hub model's layer record); an unusable HOME should read as unset.</summary>
    public Func<string, string?> Environment { get; init; } = System.Environment.GetEnvironmentVariable;

    /// <summary>
    /// Told (where, why) when a Hub model without a state directory gets no layer record (no writable Hugging Face home):
    /// the run goes on, a re-run reads every layer again. Default: a warning in domain words; a command names its option.
    /// </summary>
    public Action<string, string>? NoLayerRecord { get; init; }

    /// <summary>Takes the one-writer lock of a layout (path of the lock file, what it guards); default: wait for it without a limit.</summary>
    public Func<string, string, CancellationToken, Task<IDisposable>>? LockLayout { get; init; }

    /// <summary>
    /// Called once the image is committed to every output, before the job returns (registry clients still open,
    /// layout locks still held): where the caller signs what was pushed. A failure here fails the job.
    /// </summary>
    public Func<PackedImage, CancellationToken, Task>? AfterCommit { get; init; }
}

/// <summary>The committed image, for <see cref="PackRequest.AfterCommit"/>.</summary>
/// <param name="FileSha256">sha256 (hex) of each model file by its source path, taken during the one read (<see cref="ModelTree.EntryDigests"/>).</param>
/// <param name="Registries">The registry outputs' clients and repositories, in output order.</param>
/// <param name="ModelName">The model's name: the directory's name, or NAME of hf://ORG/NAME.</param>
public sealed record PackedImage(PackResult Image, ModelTree Tree, IReadOnlyDictionary<string, string> FileSha256,
    IReadOnlyList<(RegistryClient Client, string Repository)> Registries, string ModelName);

/// <summary>What a pack did: the image (null after a dry run) or the plan of a dry run.</summary>
/// <param name="OutputReferences">Per output in order: a registry's HOST/REPO@DIGEST, a layout's or archive's digest.</param>
/// <param name="ImageUrl">The first registry output pinned by digest; without one the first output (<see cref="PackJob.ImageUrlOf"/>).</param>
/// <param name="HfCommit">The commit a Hub model's revision resolved to.</param>
public sealed record PackJobResult(PackResult? Image, IReadOnlyList<string> OutputReferences, string? ImageUrl, string? HfCommit, PackPlan? Plan);

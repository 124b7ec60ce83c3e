using System.Text.Json;
using ModelCar.Oci;
using ModelCar.Oci.Tar;

namespace ModelCar.Packing;

/// <summary>
/// The ModelPack manifest beside the ModelCar ones (issue 20): the same model layer blobs (no byte stored or sent
/// twice), with ModelPack's layer media types and annotations, a config derived from the model's config.json and the
/// Hub metadata (what is unknown is left out), and the index entry marked <c>unknown/unknown</c> so that no runtime
/// takes it for a platform image (containers/image falls back to an entry without platform; containerd skips
/// non-matching platforms; BuildKit and olot mark non-runnable entries so). Pure: same inputs, same bytes.
/// </summary>
public static class ModelPackAssembly
{
    /// <summary>olot's index annotation for the ModelPack entry (olot/basics.py), so tools that read olot's images find ours.</summary>
    public const string ManifestTypeAnnotation = "io.opendatahub.modelcar.manifest.type";

    public static readonly Platform UnknownPlatform = new() { Architecture = "unknown", Os = "unknown" };

    private static readonly string[] WeightExtensions = [".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ggml", ".onnx", ".h5", ".msgpack", ".ckpt", ".pb", ".tflite", ".npz", ".mlmodel", ".nemo"];

    /// <summary>The ModelPack config blob, manifest blob and the manifest's index entry (platform unknown/unknown).</summary>
    public static (AssembledBlob Config, AssembledBlob Manifest, Descriptor Entry) Assemble(IReadOnlyList<LayerPlan> plans, IReadOnlyList<Descriptor> modelLayers, PackSettings settings)
    {
        var prefix = settings.ModelsPath.Trim('/') + "/";
        var files = plans.Select(p => p.Entries.Where(e => e.Kind == LayerEntryKind.File).Select(e => e.TarPath[prefix.Length..]).ToList()).ToList();
        var config = new ModelPackConfig
        {
            Descriptor = Descriptor(settings),
            Config = ModelConfig(settings.ModelConfigJson, files.SelectMany(f => f)),
            ModelFs = new ModelPackFs { DiffIds = [.. modelLayers.Select(l => l.Digest)] }, // uncompressed tar layers: diffId = digest
        };
        var configBlob = new AssembledBlob(OciJson.Serialize(config, ModelPackJson.Config), ModelPackTypes.Config);
        var layers = new List<Descriptor>(modelLayers.Count);
        for (int i = 0; i < modelLayers.Count; i++)
        {
            var annotations = new SortedDictionary<string, string>(StringComparer.Ordinal);
            foreach (var (k, v) in modelLayers[i].Annotations ?? new Dictionary<string, string>())
            {
                if (k is ImageAssembly.FileSha256 or ImageAssembly.FilesSha256)
                {
                    annotations[k] = v;
                }
            }
            if (files[i].Count == 1 && plans[i].Title == "/" + prefix + files[i][0])
            {
                annotations[ModelPackTypes.FilePath] = prefix + files[i][0]; // the tar entry's name, as modctl writes it
                annotations[Annotations.Title] = files[i][0];
            }
            layers.Add(new Descriptor { MediaType = MediaTypeOf(files[i]), Digest = modelLayers[i].Digest, Size = modelLayers[i].Size, Annotations = annotations.Count == 0 ? null : annotations });
        }
        var manifest = new ImageManifest
        {
            ArtifactType = ModelPackTypes.ArtifactType,
            Config = configBlob.Descriptor,
            Layers = layers,
        };
        var manifestBlob = new AssembledBlob(OciJson.Serialize(manifest, OciJson.Manifest), MediaTypes.ImageManifest);
        var entry = manifestBlob.Descriptor with
        {
            ArtifactType = ModelPackTypes.ArtifactType,
            Platform = UnknownPlatform,
            Annotations = new SortedDictionary<string, string>(StringComparer.Ordinal) { [ManifestTypeAnnotation] = "modelpack" },
        };
        return (configBlob, manifestBlob, entry);
    }

    /// <summary>A layer's ModelPack media type from its files: weights if it holds any, else docs, code or (the rest) weight config.</summary>
    public static string MediaTypeOf(IReadOnlyList<string> paths)
    {
        if (paths.Any(IsWeight))
        {
            return ModelPackTypes.Weight;
        }
        if (paths.Count > 0 && paths.All(IsDoc))
        {
            return ModelPackTypes.Doc;
        }
        if (paths.Count > 0 && paths.All(p => p.EndsWith(".py", StringComparison.OrdinalIgnoreCase)))
        {
            return ModelPackTypes.Code;
        }
        return ModelPackTypes.WeightConfig;
    }

    private static bool IsWeight(string path) => WeightExtensions.Any(x => path.EndsWith(x, StringComparison.OrdinalIgnoreCase));

    private static bool IsDoc(string path)
    {
        var name = Path.GetFileName(path);
        return name.EndsWith(".md", StringComparison.OrdinalIgnoreCase) || name.StartsWith("LICENSE", StringComparison.OrdinalIgnoreCase)
            || name.StartsWith("NOTICE", StringComparison.OrdinalIgnoreCase) || name.StartsWith("USE_POLICY", StringComparison.OrdinalIgnoreCase);
    }

    private static ModelPackDescriptor Descriptor(PackSettings settings) => new()
    {
        Name = string.IsNullOrEmpty(settings.ModelName) ? null : settings.ModelName,
        SourceUrl = settings.Annotations.TryGetValue(Oci.Annotations.Source, out var source) ? source : null,
        Revision = settings.Annotations.TryGetValue(Oci.Annotations.Revision, out var revision) ? revision : null,
        Family = FromConfig(settings.ModelConfigJson, c => Str(c, "model_type")),
    };

    /// <summary>What config.json says (transformers' keys), and the weights' format from their file names; unknown → left out.</summary>
    public static ModelPackModelConfig ModelConfig(byte[]? configJson, IEnumerable<string> files)
    {
        var formats = files.Where(IsWeight).Select(f => Path.GetExtension(f).ToLowerInvariant() switch
        {
            ".safetensors" => "safetensors",
            ".gguf" => "gguf",
            ".bin" or ".pt" or ".pth" or ".ckpt" => "pytorch",
            ".onnx" => "onnx",
            _ => "?",
        }).Distinct().ToList();
        return new ModelPackModelConfig
        {
            Format = formats is [var one] && one != "?" ? one : null,
            Architecture = FromConfig(configJson, c => c.TryGetProperty("architectures", out var a) && a.ValueKind == JsonValueKind.Array && a.GetArrayLength() > 0 && a[0].ValueKind == JsonValueKind.String ? a[0].GetString() : null),
            Precision = FromConfig(configJson, c => Str(c, "torch_dtype") ?? Str(c, "dtype")),
            Quantization = FromConfig(configJson, c => c.TryGetProperty("quantization_config", out var q) && q.ValueKind == JsonValueKind.Object ? Str(q, "quant_method") : null),
        };
    }

    private static string? Str(JsonElement o, string name) =>
        o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String && v.GetString() is { Length: > 0 } s ? s : null;

    private static string? FromConfig(byte[]? json, Func<JsonElement, string?> get)
    {
        if (json is null)
        {
            return null;
        }
        try
        {
            using var doc = JsonDocument.Parse(json);
            return doc.RootElement.ValueKind == JsonValueKind.Object ? get(doc.RootElement) : null;
        }
        catch (JsonException)
        {
            return null; // not JSON: nothing known from it
        }
    }
}

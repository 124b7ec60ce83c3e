using System.Text.Json;
using System.Text.Json.Serialization;
using ModelCar.Common.Cli;

namespace ModelCar.OciPack;

/// <summary>What hf-fetch leaves in <c>DIR/.hf-fetch/snapshot.json</c> (only the fields oci-pack uses are required).</summary>
public sealed record HfSnapshot
{
    [JsonPropertyName("repoId")] public string? RepoId { get; init; }
    [JsonPropertyName("repoType")] public string? RepoType { get; init; }
    [JsonPropertyName("revision")] public string? Revision { get; init; }
    [JsonPropertyName("commit")] public string? Commit { get; init; }
    [JsonPropertyName("endpoint")] public string? Endpoint { get; init; }

    public const string RelativePath = ".hf-fetch/snapshot.json";

    /// <summary>Reads the snapshot if the model directory has one; a present but broken file is an error.</summary>
    public static HfSnapshot? TryRead(string modelDir)
    {
        var path = Path.Combine(modelDir, RelativePath);
        if (!File.Exists(path))
        {
            return null;
        }
        try
        {
            return JsonSerializer.Deserialize(File.ReadAllBytes(path), HfSnapshotJson.Default.HfSnapshot);
        }
        catch (JsonException e)
        {
            throw new ToolException($"'{path}' is not valid hf-fetch metadata: {e.Message}", e);
        }
    }

    /// <summary>org.opencontainers.image.source / .revision from the snapshot.</summary>
    public IEnumerable<KeyValuePair<string, string>> Annotations()
    {
        if (!string.IsNullOrEmpty(RepoId))
        {
            // the annotation is public (anyone who can pull reads it): no user-info or query from the URL
            var endpoint = string.IsNullOrEmpty(Endpoint) ? "https://huggingface.co" : ModelCar.Common.Logging.Redactor.PublicUrl(Endpoint).TrimEnd('/');
            var prefix = RepoType switch
            {
                "dataset" => "/datasets",
                "space" => "/spaces",
                _ => string.Empty,
            };
            yield return new(Oci.Annotations.Source, $"{endpoint}{prefix}/{RepoId}");
        }
        if (!string.IsNullOrEmpty(Commit))
        {
            yield return new(Oci.Annotations.Revision, Commit);
        }
    }
}

[JsonSourceGenerationOptions(PropertyNameCaseInsensitive = false)]
[JsonSerializable(typeof(HfSnapshot))]
internal sealed partial class HfSnapshotJson : JsonSerializerContext;

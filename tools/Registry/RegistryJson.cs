using System.Text.Json.Serialization;

namespace ModelCar.Registry;

/// <summary>The distribution-spec error body: <c>{"errors":[{"code","message","detail"}]}</c>.</summary>
public sealed record RegistryErrorBody
{
    [JsonPropertyName("errors")] public IReadOnlyList<RegistryErrorEntry>? Errors { get; init; }
}

public sealed record RegistryErrorEntry
{
    [JsonPropertyName("code")] public string? Code { get; init; }
    [JsonPropertyName("message")] public string? Message { get; init; }
    [JsonPropertyName("detail")] public System.Text.Json.JsonElement? Detail { get; init; }
}

/// <summary>A token endpoint's answer (docker token spec: token or access_token).</summary>
public sealed record TokenResponse
{
    [JsonPropertyName("token")] public string? Token { get; init; }
    [JsonPropertyName("access_token")] public string? AccessToken { get; init; }
    [JsonPropertyName("expires_in")] public int? ExpiresIn { get; init; }
    [JsonPropertyName("issued_at")] public string? IssuedAt { get; init; }
    [JsonPropertyName("refresh_token")] public string? RefreshToken { get; init; }
}

/// <summary>containers-auth.json(5) / docker config.json (the parts we read).</summary>
public sealed record AuthConfigFile
{
    [JsonPropertyName("auths")] public Dictionary<string, AuthConfigEntry>? Auths { get; init; }
    [JsonPropertyName("credHelpers")] public Dictionary<string, string>? CredHelpers { get; init; }
    [JsonPropertyName("credsStore")] public string? CredsStore { get; init; }
}

public sealed record AuthConfigEntry
{
    [JsonPropertyName("auth")] public string? Auth { get; init; }
    [JsonPropertyName("username")] public string? Username { get; init; }
    [JsonPropertyName("password")] public string? Password { get; init; }
    [JsonPropertyName("identitytoken")] public string? IdentityToken { get; init; }
}

/// <summary>What <c>docker-credential-NAME get</c> prints.</summary>
public sealed record CredentialHelperOutput
{
    [JsonPropertyName("ServerURL")] public string? ServerUrl { get; init; }
    [JsonPropertyName("Username")] public string? Username { get; init; }
    [JsonPropertyName("Secret")] public string? Secret { get; init; }
}

[JsonSourceGenerationOptions(PropertyNameCaseInsensitive = true, ReadCommentHandling = System.Text.Json.JsonCommentHandling.Skip, AllowTrailingCommas = true)]
[JsonSerializable(typeof(RegistryErrorBody))]
[JsonSerializable(typeof(TokenResponse))]
[JsonSerializable(typeof(AuthConfigFile))]
[JsonSerializable(typeof(Dictionary<string, AuthConfigEntry>))]
[JsonSerializable(typeof(AuthConfigEntry))]
[JsonSerializable(typeof(CredentialHelperOutput))]
public sealed partial class RegistryJsonContext : JsonSerializerContext;

using ModelCar.Common.IO;

namespace ModelCar.ModelRegistry;

/// <summary>
/// The Bearer token for the Model Registry, as the Python client finds it: the file the caller names,
/// else <c>$KF_PIPELINES_SA_TOKEN_PATH</c>, else the pod's service-account token if it exists; else none.
/// </summary>
public static class ModelRegistryTokens
{
    public const string ServiceAccountTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token";
    public const string TokenPathVariable = "KF_PIPELINES_SA_TOKEN_PATH";

    /// <param name="file">The token file the caller was given, or null.</param>
    /// <param name="fileHow">How that file was given, for messages (e.g. the option's name).</param>
    public static TokenSource? Resolve(string? file, string fileHow)
    {
        if (!string.IsNullOrEmpty(file))
        {
            return new TokenSource(SecretFile.Read(file, "token"), file, fileHow);
        }
        if (Environment.GetEnvironmentVariable(TokenPathVariable) is { Length: > 0 } fromEnv)
        {
            return new TokenSource(SecretFile.Read(fromEnv, "token"), fromEnv, "$" + TokenPathVariable);
        }
        if (File.Exists(ServiceAccountTokenPath))
        {
            return new TokenSource(SecretFile.Read(ServiceAccountTokenPath, "token"), ServiceAccountTokenPath, "pod service account");
        }
        return null;
    }
}

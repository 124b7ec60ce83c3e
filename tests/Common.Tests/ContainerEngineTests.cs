using ModelCar.TestSupport;

namespace ModelCar.Common.Tests;

/// <summary>The registry container starts through Testcontainers and answers the distribution API.</summary>
public class ContainerEngineTests
{
    [Fact]
    public async Task Registry_container_answers_v2()
    {
        await using var registry = await new RegistryContainer().StartAsync();
        using var http = new HttpClient();
        using var response = await http.GetAsync(new Uri(registry.BaseUri, "v2/"));
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("registry/2.0", response.Headers.GetValues("Docker-Distribution-API-Version").Single());
    }
}

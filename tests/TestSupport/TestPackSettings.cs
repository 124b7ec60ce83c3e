using ModelCar.Packing;

namespace ModelCar.TestSupport;

/// <summary>The pack settings the unit tests start from: /models, root-owned files read as user 1001, epoch timestamps.</summary>
public static class TestPackSettings
{
    /// <param name="layerThreshold">Files at least this large get a layer of their own.</param>
    public static PackSettings Create(long layerThreshold = 1000) => new()
    {
        ModelsPath = "/models",
        Uid = 0,
        Gid = 0,
        User = "1001",
        LayerThreshold = layerThreshold,
        Created = DateTimeOffset.UnixEpoch,
    };
}

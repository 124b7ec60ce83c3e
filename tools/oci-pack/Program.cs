using ModelCar.Packing;
using ModelCar.Common.Cli;

return await ToolApp.RunAsync("oci-pack", ModelCar.OciPack.OciPackCommand.Create(), args);

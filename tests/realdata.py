"""Where the real data lies: ``../shared`` beside the repository (read at run time, never copied)."""

from pathlib import Path

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
REALDATA = SHARED / "realdata"
REALGRIDS = SHARED / "realgrids"
ERSST_STACK = REALGRIDS / "ersstv5_ncei_monthly" / "ersstv5_sst_monthly_1854-01_2010-12_2deg_global.nc"
ERSST_ORIGINALS = REALGRIDS / "ersstv5_ncei_monthly" / "originals_sample"

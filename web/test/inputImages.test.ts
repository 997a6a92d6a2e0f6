// The explorer's input images: each URL fetched once however many views show it, a failed fetch
// tried again, and the images of inputs or models that are gone dropped and freed.
import { describe, expect, it } from "vitest";
import { InputImages } from "../src/views/explorer/inputImages";

/** A fake fetch that counts its calls (by URL) and fails for the URLs in ``failing``. */
function counting(failing = new Set<string>()) {
  const calls: string[] = [];
  const released: string[] = [];
  const images = new InputImages(
    async (url) => {
      calls.push(url);
      if (failing.has(url)) throw new Error(`404: ${url}`);
      return `blob:${url}#${calls.length}`;
    },
    (blobUrl) => released.push(blobUrl),
  );
  return { images, calls, released };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

describe("input images", () => {
  it("fetches an image once for every view that shows it, also while the first fetch is on its way", async () => {
    const { images, calls } = counting();
    const url = "api/explorer/inputs/i2/image?model=m1";
    const [a, b] = await Promise.all([images.blobUrl(url), images.blobUrl(url)]); // (the thumbnail and the slab)
    expect(await images.blobUrl(url)).toBe(a); // (the input panel, later)
    expect(b).toBe(a);
    expect(calls).toEqual([url]);
    await images.blobUrl("api/explorer/inputs/i2/image"); // (as given, not as a model sees it: another image)
    expect(calls).toHaveLength(2);
  });

  it("does not keep a failed fetch: the next use tries again", async () => {
    const failing = new Set(["api/explorer/inputs/i9/image"]);
    const { images, calls } = counting(failing);
    await expect(images.blobUrl("api/explorer/inputs/i9/image")).rejects.toThrow("404");
    await settle();
    expect(images.size).toBe(0);
    failing.clear();
    await expect(images.blobUrl("api/explorer/inputs/i9/image")).resolves.toMatch(/^blob:/);
    expect(calls).toHaveLength(2);
  });

  it("drops and frees the images of inputs or models that are gone, and fetches them anew if asked again", async () => {
    const { images, calls, released } = counting();
    const kept = "api/explorer/inputs/i2/image?model=m1", gone = "api/explorer/inputs/i3/image?model=m1";
    const goneBlob = await images.blobUrl(gone);
    await images.blobUrl(kept);
    images.keepOnly(new Set([kept]));
    await settle();
    expect(released).toEqual([goneBlob]);
    expect(images.size).toBe(1);
    await images.blobUrl(kept);
    expect(calls).toEqual([gone, kept]);
    await images.blobUrl(gone);
    expect(calls).toEqual([gone, kept, gone]);
    images.clear();
    await settle();
    expect(released).toHaveLength(3);
    expect(images.size).toBe(0);
  });
});

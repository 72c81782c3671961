// A test page (bundled by test/e2e-tus-uppy.test.ts with esbuild, served by that test only):
// an unmodified Uppy with its tus plugin, nothing of ours but the file it is given.
import Uppy from '@uppy/core';
import Tus from '@uppy/tus';
import { seededBytes } from '../helpers/seeded-bytes';

/** What the test reads back (page.waitForFunction / page.evaluate). */
const state = { progress: [], uploadURL: null, done: false, error: null };
window.uppyState = state;

/**
 * Adds the file made from `seed` and uploads it. Called again after a reload with the same
 * arguments, it is the same file to Uppy (name, type, size, lastModified), so the tus plugin
 * finds the upload URL it stored under that file's fingerprint and resumes there.
 */
window.startUpload = ({ endpoint, token, chunkSize, size, seed, name, md5 }) => {
  const uppy = new Uppy({ autoProceed: false });
  // No retries: a refusal by the server shows up at once as the test's failure, not as a slow success.
  uppy.use(Tus, { endpoint, chunkSize, headers: { Authorization: `Bearer ${token}` }, retryDelays: [] });
  uppy.on('upload-progress', (_file, { bytesUploaded }) => state.progress.push(bytesUploaded));
  uppy.on('upload-success', (_file, response) => {
    state.uploadURL = response.uploadURL;
    state.done = true;
  });
  uppy.on('upload-error', (_file, error, response) => {
    state.error = `${error.message} (status ${response?.status})`;
  });
  const data = new File([seededBytes(size, seed)], name, { type: 'application/octet-stream', lastModified: 1_700_000_000_000 });
  uppy.addFile({ name, type: data.type, data, meta: { md5 } });
  void uppy.upload();
};

/** The upload URL the tus plugin has stored for resuming (by fingerprint, in localStorage). */
window.storedUploadUrls = () =>
  Object.keys(localStorage)
    .filter((key) => key.startsWith('tus::'))
    .map((key) => JSON.parse(localStorage.getItem(key)).uploadUrl);

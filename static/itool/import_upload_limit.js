/* The admin's import form: refuse an oversized file before sending it (the server would refuse it too, without
   reading it). The limit comes from the script tag's data-limit; no inline script (Content-Security-Policy). */
(function () {
  "use strict";
  const limit = Number(document.currentScript.dataset.limit);
  const form = document.getElementById("importjob_form");
  if (!form || !limit) return;
  form.addEventListener("submit", (event) => {
    for (const input of form.querySelectorAll('input[type="file"]')) {
      const file = input.files && input.files[0];
      if (file && file.size > limit) {
        event.preventDefault();
        window.alert(`${file.name} is ${file.size} bytes, over the upload limit of ${limit} bytes. ` +
                     "Import large files with `manage.py import_data` on the server.");
        return;
      }
    }
  });
})();
